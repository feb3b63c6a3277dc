package dbmanager_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// TestNodeFailureRetriesWithoutSkipping: a failure of the node itself
// while applying (here the disk: the body cannot be spooled) stops the
// db-manager with nothing applied and nothing announced for the request;
// once repaired, the next run applies it, once.
func TestNodeFailureRetriesWithoutSkipping(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	dir := t.TempDir()
	run := h.start(t, l, dir)
	h.publish(t, "m", csvRows("t", "r1", "x\n1\n"))
	requireApplied(t, outcomes.await(t, "r1")["r1"], 1)

	spool := filepath.Join(dir, "spool")
	require.NoError(t, os.RemoveAll(spool))
	require.NoError(t, os.WriteFile(spool, []byte("in the way"), 0o644))
	h.publish(t, "m", csvRows("t", "r2", "x\n2\n"))
	require.Eventually(t, func() bool { stopped, _ := run.stopped(); return stopped }, waitFor, tick)
	_, err := run.stopped()
	require.Error(t, err, "a node failure ends Run with an error, for the node to retry")
	require.Empty(t, outcomes.byID()["r2"], "no outcome for a request the node failed on")

	require.NoError(t, os.Remove(spool))
	again := h.start(t, l, dir)
	requireApplied(t, outcomes.await(t, "r2")["r2"], 1)
	require.Len(t, outcomes.byID()["r2"], 1)
	again.stop(t)
	db := openCopy(t, localFile(dir))
	require.Equal(t, []string{"1", "2"}, queryStrings(t, db, "SELECT x FROM t ORDER BY x"))
}
