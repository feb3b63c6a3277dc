package dbmanager_test

import (
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// A node that gets a model back does not trust its local file when another
// holder wrote the model in between: the file's requests after the newest
// version were applied by a holder the notifier stopped trusting, and may
// disagree with what the holder since applied and published (here: uuid()
// gives each application its own values). It starts from the newest
// version instead, so published facts never change.
func TestLocalFileOfAnEarlierEpochIsNotTrusted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l1 := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	h.publish(t, "m", sqlMutation("s1", `{"sql":"create table t (n int, v varchar)"}`))
	h.publish(t, "m", sqlMutation("s2", `{"sql":"insert into t select 1, uuid()::varchar"}`))
	third := h.publish(t, "m", sqlMutation("s3", `{"sql":"insert into t select 2, uuid()::varchar"}`))

	// n1 applies all three, then loses the model before its first version
	// is committed: n2 takes it over.
	var taken atomic.Bool
	l2 := make(chan lease, 1)
	dir1 := t.TempDir()
	r1 := h.start(t, l1, dir1, dbmanager.WithBeforeCommit(func(uint64) {
		if taken.CompareAndSwap(false, true) {
			l2 <- h.handOver(t, l1, "n2")
		}
	}))
	second := <-l2
	require.Eventually(t, func() bool { done, _ := r1.stopped(); return done }, waitFor, tick, "the stale holder keeps running")

	// n2 applies them again from the log and publishes.
	r2 := h.start(t, second, t.TempDir())
	spec := h.awaitVersion(t, "m", third.Sequence)
	published := queryStrings(t, openCopy(t, h.blobPath(blob.Key("m", spec.GetVersion(), blob.DuckDBFile))), "select n, v from t order by n")
	require.Len(t, published, 2)
	r2.stop(t)
	require.NoError(t, catalog.Release(testContext(t), h.owners, "m", second.rev))

	// n1 gets the model back, with its own file of the same applied_seq.
	l3 := h.grant(t, "m", "n1")
	h.start(t, l3, dir1)
	last := h.publish(t, "m", sqlMutation("s4", `{"sql":"insert into t values (3, 'x')"}`))
	spec = h.awaitVersion(t, "m", last.Sequence)
	got := queryStrings(t, openCopy(t, h.blobPath(blob.Key("m", spec.GetVersion(), blob.DuckDBFile))), "select n, v from t order by n")
	require.Equal(t, append(published, "3|x"), got, "the rows n2 published changed: n1 kept its own file")
}

// A request that an earlier holder applied and notified as failed for one
// of its limits (here: past its deadline) fails again the same way when
// the successor replays it from the log, even though it would now succeed:
// its client was told it failed.
func TestReplayKeepsANotifiedFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l1 := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	// n1 took the model over, applied and notified, and died before any
	// version: its notification is in TT_NTF as its notifier published it.
	_, err := catalog.TakeOver(testContext(t), h.models, "m", l1.epoch, "")
	require.NoError(t, err)
	h.publish(t, "m", sqlMutation("s1", `{"sql":"create table t (n int)"}`))
	slow := h.publish(t, "m", sqlMutation("s2", `{"sql":"insert into t values (1)"}`))
	told := &teatreev1.RequestStatus{RequestId: "s2", Model: "m", Op: subject.OpSQL, Status: subject.StatusFailed, Seq: slow.Sequence,
		Error: &teatreev1.Error{Code: string(apierr.DeadlineExceeded), Message: "the request ran longer than the model's request timeout"}}
	body, err := wire.Marshal(told)
	require.NoError(t, err)
	ntf := nats.NewMsg(h.names.NtfRequest("m", "s2"))
	ntf.Data = body
	ntf.Header.Set(subject.HeaderStatus, subject.StatusFailed)
	_, err = h.env.JS.PublishMsg(testContext(t), ntf)
	require.NoError(t, err)
	require.NoError(t, catalog.Release(testContext(t), h.owners, "m", l1.rev))

	outcomes := h.watchOutcomes(t, "m")
	h.start(t, h.grant(t, "m", "n2"), t.TempDir())
	got := outcomes.await(t, "s1", "s2")
	requireApplied(t, got["s1"], 0)
	requireFailed(t, got["s2"], string(apierr.DeadlineExceeded))
	require.Equal(t, told.GetError().GetMessage(), got["s2"].GetError().GetMessage())
	spec := h.awaitVersion(t, "m", slow.Sequence)
	var n int
	queryRow(t, openCopy(t, h.blobPath(blob.Key("m", spec.GetVersion(), blob.DuckDBFile))), "select count(*) from t", &n)
	require.Zero(t, n, "a request notified as failed was applied")
}
