package dbmanager_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// A holder that lost the model to a successor between writing a version's
// files and committing it publishes nothing: the catalog stays as the
// successor made it, its reserved version is abandoned, no file of a
// committed version changes, and Run ends as for a lost lease.
func TestStaleHolderCannotPublish(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	var armed atomic.Bool
	var refused atomic.Uint64
	successor := make(chan lease, 1)
	run := h.start(t, l, t.TempDir(), dbmanager.WithBeforeCommit(func(v uint64) {
		if !armed.CompareAndSwap(true, false) {
			return
		}
		// The lease expired meanwhile; a successor got it and took over.
		next := h.handOver(t, l, "n2")
		refused.Store(v)
		successor <- next
	}))

	first := h.publish(t, "m", csvRows("a", "a1", "x\n1\n"))
	committed := h.awaitVersion(t, "m", first.Sequence)
	before := versionFiles(t, h, "m", committed.GetVersion())
	require.NotEmpty(t, before)

	armed.Store(true)
	h.publish(t, "m", csvRows("a", "a2", "x\n2\n"))
	l2 := <-successor
	var err error
	require.Eventually(t, func() bool {
		var done bool
		done, err = run.stopped()
		return done
	}, waitFor, tick, "a stale holder keeps running")
	require.ErrorIs(t, err, catalog.ErrStale)
	require.ErrorIs(t, err, catalog.ErrLeaseLost, "the node treats it as a lost lease")
	require.ErrorContains(t, err, "commit version")

	spec := h.spec(t, "m")
	require.Equal(t, l2.epoch, spec.GetLeaseEpoch())
	require.Equal(t, committed.GetVersion(), spec.GetVersion())
	require.Equal(t, committed.GetAppliedSeq(), spec.GetAppliedSeq())
	v := refused.Load()
	require.Greater(t, v, committed.GetVersion())
	require.Contains(t, spec.GetAbandonedVersions(), v)
	require.False(t, catalog.VersionVisible(spec, v))
	require.Equal(t, before, versionFiles(t, h, "m", committed.GetVersion()), "a committed version changed")

	// The stale holder cannot come back under its epoch either.
	again := h.start(t, l, t.TempDir())
	require.Eventually(t, func() bool {
		done, err := again.stopped()
		return done && err != nil
	}, waitFor, tick)
	_, err = again.stopped()
	require.ErrorIs(t, err, catalog.ErrLeaseLost)
	require.Equal(t, spec, h.spec(t, "m"))

	// The successor applies a2 again from the log, publishes under a new
	// number, and collects the abandoned folder.
	h.start(t, l2, t.TempDir())
	last := h.publish(t, "m", csvRows("a", "a3", "x\n3\n"))
	spec = h.awaitVersion(t, "m", last.Sequence)
	require.Greater(t, spec.GetVersion(), v)
	require.Equal(t, int64(3), tablesOf(h.manifest(t, "m", spec.GetVersion()))["a"].GetRows())
	require.Equal(t, before, versionFiles(t, h, "m", committed.GetVersion()))
	require.Eventually(t, func() bool {
		_, err := os.Stat(h.blobPath(blob.VersionPrefix("m", v)))
		return os.IsNotExist(err)
	}, waitFor, tick, "the abandoned version's folder is not collected")
}

// handOver gives the model of l to node as a successor would get it: the
// lease released and granted anew, and the catalog taken over at the new
// epoch. It may run on a db-manager's goroutine, so it reports with Errorf.
func (h *harness) handOver(t *testing.T, l lease, node string) lease {
	ctx := context.Background()
	if err := catalog.Release(ctx, h.owners, l.model, l.rev); err != nil {
		t.Errorf("release: %v", err)
	}
	epoch, rev, err := catalog.Grant(ctx, h.owners, l.model, node)
	if err != nil {
		t.Errorf("grant: %v", err)
	}
	if _, err := catalog.TakeOver(ctx, h.models, l.model, epoch, ""); err != nil {
		t.Errorf("take over: %v", err)
	}
	return lease{model: l.model, node: node, epoch: epoch, rev: rev}
}

// versionFiles is the sha256 of every file of a version's folder.
func versionFiles(t *testing.T, h *harness, model string, version uint64) map[string]string {
	t.Helper()
	root := h.blobPath(blob.VersionPrefix(model, version))
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		out[path] = hex.EncodeToString(sum[:])
		return nil
	}))
	return out
}

// Outcome events say which writer epoch produced them: the notifier trusts
// an older epoch's outcomes only up to where the next epoch started.
func TestOutcomesCarryTheEpoch(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	dir := t.TempDir()

	run := h.start(t, l, dir)
	h.publish(t, "m", csvRows("a", "a1", "x\n1\n"))
	require.Equal(t, l.epoch, outcomes.await(t, "a1")["a1"].epoch)
	run.stop(t)

	require.NoError(t, catalog.Release(testContext(t), h.owners, "m", l.rev))
	l2 := h.grant(t, "m", "n2")
	require.Greater(t, l2.epoch, l.epoch)
	h.start(t, l2, dir)
	h.publish(t, "m", csvRows("a", "a2", "x\n2\n"))
	outcomes.await(t, "a2")
	for _, o := range outcomes.byID()["a2"] {
		require.Equal(t, l2.epoch, o.epoch)
	}
	require.Equal(t, l2.epoch, h.spec(t, "m").GetLeaseEpoch())
}

// A request the dispatcher rejected as unavailable (its client was told it
// failed) is never applied by a later holder: it is recorded and announced
// failed unavailable, and the version that covers it drops it from the
// catalog's list.
func TestRejectedSeqsAreNotApplied(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := testContext(t)
	_, err := catalog.CreateModel(ctx, h.models, h.mut, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 50}})
	require.NoError(t, err)
	outcomes := h.watchOutcomes(t, "m")
	rejected := h.publish(t, "m", csvRows("a", "r1", "x\n1\n"))
	h.publish(t, "m", csvRows("a", "r2", "x\n2\n"))

	// The dispatcher's rejection, as it makes it: under a lease of its own.
	d := h.grant(t, "m", "_dispatcher")
	_, err = catalog.TakeOver(ctx, h.models, "m", d.epoch, "")
	require.NoError(t, err)
	require.NoError(t, catalog.Reject(ctx, h.models, "m", d.epoch, rejected.Sequence))
	require.NoError(t, catalog.Release(ctx, h.owners, "m", d.rev))

	l := h.grant(t, "m", "n1")
	run := h.start(t, l, t.TempDir())
	got := outcomes.await(t, "r1", "r2")
	requireFailed(t, got["r1"], string(apierr.Unavailable))
	require.Contains(t, got["r1"].GetError().GetMessage(), "no live node could serve model m in time")
	require.Equal(t, rejected.Sequence, got["r1"].GetSeq())
	requireApplied(t, got["r2"], 1)

	spec := h.awaitVersion(t, "m", rejected.Sequence+1)
	require.Empty(t, spec.GetRejectedSeqs(), "the version covers the rejected seq")
	run.stop(t)
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{"2"}, queryStrings(t, db, "SELECT x FROM a"))
	require.Equal(t, []string{"r1|failed|unavailable"}, queryStrings(t, db, "SELECT request_id, status, error_code FROM _tt_requests WHERE request_id = 'r1'"))
}

// Once versions are published, the model's log is purged up to the oldest
// version kept (here the second newest): a node that restores it needs
// nothing older. A manager started afresh still resumes where the newest
// version ends.
func TestLogPurgedToTheOldestKeptVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 50, Keep: 2}})
	other, err := catalog.CreateModel(testContext(t), h.models, h.mut, &teatreev1.ModelSpec{Id: "o"})
	require.NoError(t, err)
	require.NotNil(t, other)
	run := h.start(t, l, t.TempDir())

	otherSeq := h.publish(t, "o", csvRows("a", "o1", "x\n1\n")).Sequence
	var seqs []uint64
	for _, id := range ids("a", 1, 4) {
		ack := h.publish(t, "m", csvRows("a", id, "x\n1\n"))
		h.awaitVersion(t, "m", ack.Sequence)
		seqs = append(seqs, ack.Sequence)
	}
	spec := h.spec(t, "m")
	oldestKept := h.manifest(t, "m", spec.GetVersion()-1).GetAppliedSeq()
	require.Less(t, oldestKept, spec.GetAppliedSeq())

	ctx := testContext(t)
	// The catalog names the newest version before its publication
	// collects and purges: wait for the purge.
	require.Eventually(t, func() bool {
		for _, seq := range seqs {
			if _, err := h.mut.GetMsg(ctx, seq); seq <= oldestKept && !errors.Is(err, jetstream.ErrMsgNotFound) {
				return false
			}
		}
		return true
	}, waitFor, tick, "the log is not purged up to %d", oldestKept)
	for _, seq := range seqs {
		if seq > oldestKept {
			_, err := h.mut.GetMsg(ctx, seq)
			require.NoError(t, err, "seq %d is newer than the oldest kept version", seq)
		}
	}
	_, err = h.mut.GetMsg(ctx, otherSeq)
	require.NoError(t, err, "another model's mutation is purged")

	// A fresh node restores the newest version and carries on from it.
	run.stop(t)
	outcomes := h.watchOutcomes(t, "m")
	fresh := h.start(t, l, t.TempDir())
	last := h.publish(t, "m", csvRows("a", "a5", "x\n1\n"))
	requireApplied(t, outcomes.await(t, "a5")["a5"], 1)
	spec = h.awaitVersion(t, "m", last.Sequence)
	require.Equal(t, int64(5), tablesOf(h.manifest(t, "m", spec.GetVersion()))["a"].GetRows())
	fresh.stop(t)
	db := openCopy(t, localFile(fresh.dir))
	var n int
	queryRow(t, db, "SELECT count(*) FROM a", &n)
	require.Equal(t, 5, n)
}
