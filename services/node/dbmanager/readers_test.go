package dbmanager_test

import (
	"database/sql"
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
// but not in the model file, where every reader of a version could read
// it; an outcome replayed after a crash between its commit and its event
// finds it in the request's message.
func TestNotifyURLInOutcomes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	h.publish(t, "m", csvRows("t", "first", "x\n0\n"))
	dir := t.TempDir()
	run := h.start(t, l, dir)
	outcomes.await(t, "first")
	run.stop(t)

	m := csvRows("t", "hooked", "x\n1\n")
	m.notifyURL = "https://hooks.example/teatree"
	h.publish(t, "m", m)
	h.publish(t, "m", csvRows("t", "plain", "x\n2\n"))
	crash := errors.New("crashed before the outcomes event")
	run = h.start(t, l, dir, dbmanager.WithAnnounceFault(func() error { return crash }))
	require.Eventually(t, func() bool { done, err := run.stopped(); return done && errors.Is(err, crash) }, waitFor, tick)
	db, err := sql.Open("duckdb", localFile(dir))
	require.NoError(t, err)
	require.Equal(t, []string{"first", "hooked", "plain"}, queryStrings(t, db, "SELECT request_id FROM _tt_requests ORDER BY seq"), "committed")
	require.Empty(t, queryStrings(t, db, "SELECT column_name FROM duckdb_columns() WHERE table_name = '_tt_requests' AND column_name = 'notify_url'"))
	require.NoError(t, db.Close())

	h.start(t, l, dir)
	got := outcomes.await(t, "hooked", "plain")
	require.True(t, got["hooked"].replay)
	require.Equal(t, "https://hooks.example/teatree", got["hooked"].notifyURL)
	require.Empty(t, got["plain"].notifyURL)
}

// TestOldFilesLoseTheirNotifyURLs: a file written when _tt_requests kept
// each request's webhook has the column dropped when it is opened, its
// outcomes kept.
func TestOldFilesLoseTheirNotifyURLs(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	h.publish(t, "m", csvRows("t", "r1", "x\n1\n"))
	dir := t.TempDir()
	run := h.start(t, l, dir)
	outcomes.await(t, "r1")
	run.stop(t)

	// The file as an older teatree left it.
	db, err := sql.Open("duckdb", localFile(dir))
	require.NoError(t, err)
	_, err = db.Exec(`DROP INDEX _tt_requests_id;
ALTER TABLE _tt_requests DROP COLUMN principal;
ALTER TABLE _tt_requests ADD COLUMN notify_url VARCHAR;
UPDATE _tt_requests SET notify_url = 'https://hooks.example/old';
CREATE INDEX _tt_requests_id ON _tt_requests (request_id);`)
	require.NoError(t, err)
	require.NoError(t, db.Close())

	h.publish(t, "m", csvRows("t", "r2", "x\n2\n"))
	run = h.start(t, l, dir)
	requireApplied(t, outcomes.await(t, "r2")["r2"], 1)
	run.stop(t)
	db = openCopy(t, localFile(dir))
	require.Equal(t, []string{"r1", "r2"}, queryStrings(t, db, "SELECT request_id FROM _tt_requests ORDER BY seq"))
	require.Empty(t, queryStrings(t, db, "SELECT column_name FROM duckdb_columns() WHERE table_name = '_tt_requests' AND column_name = 'notify_url'"))
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
