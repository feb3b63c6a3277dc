package dbmanager_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A model moves to another node without shared disks: the new owner
// restores the newest snapshot into an empty directory and goes on from
// its applied sequence, applying nothing twice.
func TestRestoreOnAnotherNode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l1 := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	row := func(i int) mutation {
		return ndjsonRows(subject.OpAppend, "t", fmt.Sprintf("r-%d", i), fmt.Sprintf(`{"n": %d}`, i))
	}

	run1 := h.start(t, l1, t.TempDir())
	var last uint64
	for i := 1; i <= 40; i++ {
		last = h.publish(t, "m", row(i)).Sequence
	}
	outcomes.await(t, ids("r-", 1, 40)...)
	moved := h.awaitVersion(t, "m", last)
	require.Equal(t, last, moved.GetAppliedSeq())
	run1.stop(t)

	// The lease moves from n1 to n2, which has never held the model.
	require.NoError(t, catalog.Release(testContext(t), h.owners, "m", l1.rev))
	l2 := h.grant(t, "m", "n2")
	require.Greater(t, l2.epoch, l1.epoch)
	run2 := h.start(t, l2, t.TempDir())
	for i := 41; i <= 60; i++ {
		last = h.publish(t, "m", row(i)).Sequence
	}
	outcomes.await(t, ids("r-", 1, 60)...)
	spec := h.awaitVersion(t, "m", last)
	require.Equal(t, l2.epoch, spec.GetLeaseEpoch())
	require.Equal(t, l2.epoch, h.manifest(t, "m", spec.GetVersion()).GetLeaseEpoch())
	run2.stop(t)

	for id, os := range outcomes.byID() {
		live := 0
		for _, o := range os {
			requireApplied(t, o, 1)
			if !o.replay {
				live++
			}
		}
		require.Equal(t, 1, live, "request %s applied once", id)
	}
	for _, path := range []string{localFile(run2.dir), h.blobPath(blob.Key("m", spec.GetVersion(), blob.DuckDBFile))} {
		db := openCopy(t, path)
		var n, distinct, sum int
		queryRow(t, db, "SELECT count(*), count(DISTINCT n), sum(n) FROM t", &n, &distinct, &sum)
		require.Equal(t, 60, n, path)
		require.Equal(t, 60, distinct, path)
		require.Equal(t, 60*61/2, sum, path)
	}
}
