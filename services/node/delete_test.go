package node_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
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

	// A blob the db-manager wrote after the deleting client had removed
	// the model's blobs, as a version in flight when its lease went.
	for _, m := range []string{"sales", "orders"} {
		_, err := h.blobs.Put(ctx, blob.Key(m, 99, blob.ManifestFile), strings.NewReader("{}"))
		require.NoError(t, err)
	}

	require.NoError(t, h.models.Delete(ctx, "sales"))
	require.Eventually(t, func() bool {
		_, err := os.Stat(filepath.Join(h.dir, "sales"))
		names, lerr := h.blobs.List(ctx, blob.ModelPrefix("sales"))
		return os.IsNotExist(err) && lerr == nil && len(names) == 0
	}, 10*time.Second, 20*time.Millisecond, "the deleted model's dir or blobs stay; logs:\n%s", h.logs)

	// The other model is untouched and still served.
	h.publishSQL("orders", "orders-2", "insert into t values (1)")
	require.Equal(t, subject.StatusApplied, h.outcome("orders", "orders-2").GetStatus())
	_, err := os.Stat(filepath.Join(h.dir, "orders"))
	require.NoError(t, err)
	_, err = h.blobs.Get(ctx, blob.Key("orders", 99, blob.ManifestFile))
	require.NoError(t, err)
}
