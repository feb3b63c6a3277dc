package dbmanager_test

import (
	"errors"
	"io/fs"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// hour is a snapshot interval no test waits for.
const hour = int64(time.Hour / time.Millisecond)

// TestSnapshotNow: a reader that needs a newer version asks for one, and
// gets it without waiting for the model's interval.
func TestSnapshotNow(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: hour}})
	outcomes := h.watchOutcomes(t, "m")
	h.start(t, l, t.TempDir())
	ack := h.publish(t, "m", csvRows("t", "r1", "x\n1\n"))
	requireApplied(t, outcomes.await(t, "r1")["r1"], 1)
	require.Zero(t, h.spec(t, "m").GetVersion(), "no version before the interval")
	require.Eventually(t, func() bool {
		require.NoError(t, h.env.Conn.Publish(h.names.SnapshotNow("m"), nil))
		spec := h.spec(t, "m")
		return spec.GetAppliedSeq() >= ack.Sequence
	}, waitFor, 100*time.Millisecond)
}

// TestCollectSkipsPinned: a pinned version outlives keep until unpinned.
func TestCollectSkipsPinned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 20, Keep: 1}})
	h.start(t, l, t.TempDir())
	version := func(id string) uint64 {
		ack := h.publish(t, "m", csvRows("t", id, "x\n1\n"))
		return h.awaitVersion(t, "m", ack.Sequence).GetVersion()
	}
	exists := func(v uint64) bool {
		_, err := os.Stat(h.blobPath(blob.VersionPrefix("m", v)))
		return !errors.Is(err, fs.ErrNotExist)
	}
	v1 := version("a")
	pin, err := catalog.Pin(testContext(t), h.pins, "m", v1)
	require.NoError(t, err)
	v2 := version("b")
	v3 := version("c")
	require.Eventually(t, func() bool { return !exists(v2) }, waitFor, tick, "unpinned v%d is collected", v2)
	require.True(t, exists(v1), "pinned v%d is kept", v1)
	require.True(t, exists(v3))

	require.NoError(t, catalog.Unpin(testContext(t), h.pins, "m", v1, pin))
	version("d")
	require.Eventually(t, func() bool { return !exists(v1) }, waitFor, tick, "unpinned, v%d is collected", v1)
}

// TestNotifyURLInOutcomes: a request's webhook travels with its outcome,
// and is recorded with it for replays after a crash.
func TestNotifyURLInOutcomes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	m := csvRows("t", "hooked", "x\n1\n")
	m.notifyURL = "https://hooks.example/teatree"
	h.publish(t, "m", m)
	h.publish(t, "m", csvRows("t", "plain", "x\n2\n"))
	dir := t.TempDir()
	run := h.start(t, l, dir)
	got := outcomes.await(t, "hooked", "plain")
	require.Equal(t, "https://hooks.example/teatree", got["hooked"].notifyURL)
	require.Empty(t, got["plain"].notifyURL)

	// The webhook is in the durable record that replays are made from.
	run.stop(t)
	db := openCopy(t, localFile(dir))
	require.Equal(t, []string{"hooked|https://hooks.example/teatree", "plain|"},
		queryStrings(t, db, "SELECT request_id, coalesce(notify_url, '') FROM _tt_requests ORDER BY seq"))
}

// TestFailedPublicationRetried: a version that fails to publish is tried
// again without waiting for another mutation.
func TestFailedPublicationRetried(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 50}})
	// A file where the model's folder must go makes every upload fail.
	block := h.blobPath(blob.ModelPrefix("m"))
	require.NoError(t, os.MkdirAll(h.blobPath("models"), 0o755))
	require.NoError(t, os.WriteFile(block, []byte("in the way"), 0o644))
	h.start(t, l, t.TempDir())
	ack := h.publish(t, "m", csvRows("t", "r1", "x\n1\n"))
	time.Sleep(300 * time.Millisecond) // several intervals: publications fail
	require.Zero(t, h.spec(t, "m").GetVersion())
	require.NoError(t, os.Remove(block))
	h.awaitVersion(t, "m", ack.Sequence)
}

// A full publication budget holds versions back, but not one a reader
// waits for (min_seq): it goes first. Once the budget has room, the
// held-back changes are published too.
func TestReaderVersionSkipsAFullBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	budget := dbmanager.NewBudget(4, 1)
	ok, give := dbmanager.TakePublication(budget)
	require.True(t, ok)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 20}})
	outcomes := h.watchOutcomes(t, "m")
	h.start(t, l, t.TempDir(), func(c *dbmanager.Config) { c.Budget = budget })
	ack := h.publish(t, "m", csvRows("t", "r1", "x\n1\n"))
	requireApplied(t, outcomes.await(t, "r1")["r1"], 1)
	require.Eventually(t, func() bool {
		require.NoError(t, h.env.Conn.Publish(h.names.SnapshotNow("m"), nil))
		return h.spec(t, "m").GetAppliedSeq() >= ack.Sequence
	}, waitFor, 100*time.Millisecond)

	next := h.publish(t, "m", csvRows("t", "r2", "x\n2\n"))
	requireApplied(t, outcomes.await(t, "r2")["r2"], 1)
	give()
	h.awaitVersion(t, "m", next.Sequence)
}
