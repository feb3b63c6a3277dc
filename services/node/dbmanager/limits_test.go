package dbmanager_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// slowSQL runs for hours: a sum over a quadrillion rows.
const slowSQL = `{"sql": "CREATE TABLE slow AS SELECT sum(range) s FROM range(1000000000000000)"}`

// Request ids belong to their model: the same id sent as <model>.<id> to
// two models is two requests, each applied. An id for another model or one
// using the reserved seq- prefix fails, under the seq-<n> id.
func TestRequestIDsBelongToTheirModel(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	la := h.createModel(t, &teatreev1.ModelSpec{Id: "a"})
	lb := h.createModel(t, &teatreev1.ModelSpec{Id: "b"})
	outA := h.watchOutcomes(t, "a")
	outB := h.watchOutcomes(t, "b")
	h.start(t, la, t.TempDir())
	h.start(t, lb, t.TempDir())

	ackA := h.publish(t, "a", ndjsonRows(subject.OpAppend, "t", subject.MsgID("a", "r1"), `{"n": 1}`))
	ackB := h.publish(t, "b", ndjsonRows(subject.OpAppend, "t", subject.MsgID("b", "r1"), `{"n": 2}`, `{"n": 3}`))
	require.False(t, ackB.Duplicate)
	seq7 := h.publish(t, "a", ndjsonRows(subject.OpAppend, "t", "seq-7", `{"n": 4}`))
	other := h.publish(t, "a", ndjsonRows(subject.OpAppend, "t", subject.MsgID("b", "r2"), `{"n": 5}`))
	plain := h.publish(t, "a", ndjsonRows(subject.OpAppend, "t", "plain", `{"n": 6}`))

	gotB := outB.await(t, "r1")
	requireApplied(t, gotB["r1"], 2)
	require.Equal(t, ackB.Sequence, gotB["r1"].GetSeq())
	seq7ID, otherID := subject.SeqRequestID(seq7.Sequence), subject.SeqRequestID(other.Sequence)
	gotA := outA.await(t, "r1", seq7ID, otherID, "plain")
	requireApplied(t, gotA["r1"], 1)
	require.Equal(t, ackA.Sequence, gotA["r1"].GetSeq())
	requireFailed(t, gotA[seq7ID], "invalid_argument")
	requireFailed(t, gotA[otherID], "invalid_argument")
	requireApplied(t, gotA["plain"], 1)
	require.Equal(t, plain.Sequence, gotA["plain"].GetSeq())
	require.Empty(t, outA.byID()["seq-7"], "a client's seq- id is never used")
}

// A request that runs past spec.limits.request_timeout_ms is interrupted
// and fails deadline_exceeded; the rest of its batch and later requests
// are applied.
func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	// Far above what an append needs on a loaded machine (500 ms was not):
	// the slow statements never end by themselves.
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Limits: &teatreev1.ModelLimits{RequestTimeoutMs: 5000}})
	outcomes := h.watchOutcomes(t, "m")
	// Published before the manager starts: one batch.
	h.publish(t, "m", sqlMutation("slow", slowSQL))
	h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "append", `{"n": 1}`, `{"n": 2}`))
	h.publish(t, "m", sqlMutation("slow-insert", `{"sql": "INSERT INTO t SELECT sum(range) FROM range(1000000000000000)"}`))
	run := h.start(t, l, t.TempDir())

	got := outcomes.await(t, "slow", "append", "slow-insert")
	requireFailed(t, got["slow"], "deadline_exceeded")
	require.Contains(t, got["slow"].GetError().GetMessage(), "5s")
	requireApplied(t, got["append"], 2)
	requireFailed(t, got["slow-insert"], "deadline_exceeded")

	h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "later", `{"n": 3}`))
	requireApplied(t, outcomes.await(t, "later")["later"], 1)
	ok, err := run.stopped()
	require.False(t, ok, "the manager stopped: %v", err)

	run.stop(t)
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{"1", "2", "3"}, queryStrings(t, db, "SELECT n FROM t ORDER BY n"))
	require.Empty(t, queryStrings(t, db, "SELECT table_name FROM duckdb_tables() WHERE table_name = 'slow'"))
}

// Cancelling Run interrupts a running statement: Run returns, the file is
// closed, and a new Run of the same file in this process opens it.
func TestStopInterruptsStatement(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Limits: &teatreev1.ModelLimits{RequestTimeoutMs: 3_600_000}})
	outcomes := h.watchOutcomes(t, "m")
	dir := t.TempDir()
	run := h.start(t, l, dir)
	h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "first", `{"n": 1}`))
	outcomes.await(t, "first")

	slow := h.publish(t, "m", sqlMutation("slow", slowSQL))
	// The manager has the message once its consumer has delivered it.
	require.Eventually(t, func() bool {
		return delivered(t, h, slow.Sequence)
	}, waitFor, tick)
	run.cancel()
	require.Eventually(t, func() bool {
		ok, _ := run.stopped()
		return ok
	}, 20*time.Second, tick, "Run did not return after its context ended")
	_, err := run.stopped()
	require.NoError(t, err)
	require.Empty(t, outcomes.byID()["slow"], "an interrupted statement is not the request's outcome")

	// The same file opens again in this process; with a deadline (far above
	// what the append after it needs on a loaded machine) the
	// statement now fails as the request's own.
	// The limit lives in the catalog, which Run reads when it takes over.
	spec := h.spec(t, "m")
	spec.Limits = &teatreev1.ModelLimits{RequestTimeoutMs: 5000}
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = h.models.Put(testContext(t), "m", b)
	require.NoError(t, err)
	again := h.start(t, l, dir)
	requireFailed(t, outcomes.await(t, "slow")["slow"], "deadline_exceeded")
	h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "after", `{"n": 2}`))
	requireApplied(t, outcomes.await(t, "after")["after"], 1)
	again.stop(t)
}

// delivered reports whether a consumer of TT_MUT has delivered seq.
func delivered(t *testing.T, h *harness, seq uint64) bool {
	t.Helper()
	ctx := testContext(t)
	list := h.mut.ListConsumers(ctx)
	found := false
	for info := range list.Info() {
		if info.Delivered.Stream >= seq {
			found = true
		}
	}
	require.NoError(t, list.Err())
	return found
}

// A request that needs more memory than the model may use fails
// resource_exhausted, naming the limit; the request batched with it is
// applied.
func TestOutOfMemory(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "before", `{"n": 1}`))
	h.publish(t, "m", sqlMutation("big", `{"sql": "CREATE TABLE big AS SELECT list(repeat('x', 100) || range) l FROM range(10000000)"}`))
	h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "after", `{"n": 2}`))
	run := h.start(t, l, t.TempDir(), func(c *dbmanager.Config) { c.MemoryLimit = "256MB" })

	got := outcomes.await(t, "before", "big", "after")
	requireApplied(t, got["before"], 1)
	requireFailed(t, got["big"], "resource_exhausted")
	require.Contains(t, got["big"].GetError().GetMessage(), "256MB")
	requireApplied(t, got["after"], 1)

	run.stop(t)
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{"1", "2"}, queryStrings(t, db, "SELECT n FROM t ORDER BY n"))
}

// What a crashed run left in staging/ and spool/, and a restore's temporary
// file, are removed at open.
func TestOpenSweepsLeftovers(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	dir := t.TempDir()
	var leftovers []string
	for _, sub := range []string{"staging", "spool"} {
		require.NoError(t, os.MkdirAll(filepath.Join(dir, sub, "nested"), 0o755))
		for _, name := range []string{"7.duckdb", filepath.Join("nested", "x")} {
			p := filepath.Join(dir, sub, name)
			require.NoError(t, os.WriteFile(p, []byte("left over"), 0o644))
			leftovers = append(leftovers, p)
		}
	}
	// And a restore cut short.
	temp := filepath.Join(dir, ".put-123")
	require.NoError(t, os.WriteFile(temp, []byte("half a file"), 0o644))
	leftovers = append(leftovers, temp)
	run := h.start(t, l, dir)
	h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "x", `{"n": 1}`))
	requireApplied(t, outcomes.await(t, "x")["x"], 1)
	run.stop(t)
	for _, p := range leftovers {
		require.NoFileExists(t, p)
	}
}
