package node_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestDeletedModelLosesItsFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	for _, m := range []string{"sales", "orders"} {
		h.createModel(m)
		h.grant(m, "node-a")
	}
	h.run("node-a")
	for _, m := range []string{"sales", "orders"} {
		h.publishSQL(m, m+"-1", "create table t (x int)")
		require.Equal(t, subject.StatusApplied, h.outcome(m, m+"-1").GetStatus())
		_, err := os.Stat(filepath.Join(h.dir, m))
		require.NoError(t, err)
	}

	require.NoError(t, h.models.Delete(ctx, "sales"))
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(h.dir, "sales"))
		return os.IsNotExist(err)
	}, 10*time.Second, 20*time.Millisecond, "the deleted model's dir stays; logs:\n%s", h.logs)

	// The other model is untouched and still served.
	h.publishSQL("orders", "orders-2", "insert into t values (1)")
	require.Equal(t, subject.StatusApplied, h.outcome("orders", "orders-2").GetStatus())
	_, err := os.Stat(filepath.Join(h.dir, "orders"))
	require.NoError(t, err)
}
