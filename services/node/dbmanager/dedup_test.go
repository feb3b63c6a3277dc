package dbmanager_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A retry that comes after JetStream's duplicate window is accepted by the
// stream but dropped by the model, which remembers the request ids it has
// applied.
func TestRequestIDDedupBeyondDuplicateWindow(t *testing.T) {
	t.Parallel()
	h := newHarnessWith(t, natsboot.Config{DuplicateWindow: time.Second})
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	run := h.start(t, l, t.TempDir())

	first := h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "x", `{"n": 1}`))
	outcomes.await(t, "x")
	// Within the window JetStream itself drops the retry.
	within := h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "x", `{"n": 2}`))
	require.True(t, within.Duplicate)
	require.Equal(t, first.Sequence, within.Sequence)

	// JetStream's window expiring is not observable, so wait it out.
	time.Sleep(1500 * time.Millisecond)
	late := h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "x", `{"n": 3}`, `{"n": 4}`))
	require.False(t, late.Duplicate, "past its window JetStream accepts the retry")
	require.Greater(t, late.Sequence, first.Sequence)
	// A later request shows the manager got past the retry.
	after := h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", "y", `{"n": 10}`))
	got := outcomes.await(t, "x", "y")
	requireApplied(t, got["x"], 1)
	require.Equal(t, first.Sequence, got["x"].GetSeq())
	requireApplied(t, got["y"], 1)
	require.Equal(t, after.Sequence, got["y"].GetSeq())

	run.stop(t)
	require.Len(t, outcomes.byID()["x"], 1, "one outcome for x")
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{"1", "10"}, queryStrings(t, db, "SELECT n FROM t ORDER BY n"))
	var applied uint64
	queryRow(t, db, "SELECT applied_seq FROM _tt_state", &applied)
	require.Equal(t, after.Sequence, applied)
}
