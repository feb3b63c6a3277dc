package notifier_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/services/notifier"
)

// cancels subscribes to tt.work.cancel.<model>.<id> as the worker running
// the call does.
func (h *harness) cancels(model, id string) chan *nats.Msg {
	h.t.Helper()
	ch := make(chan *nats.Msg, 4)
	sub, err := h.nc.ChanSubscribe(h.names.WorkCancel(model, id), ch)
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = sub.Unsubscribe() })
	require.NoError(h.t, h.nc.Flush())
	return ch
}

// jobGone waits until TT_CALL no longer holds the job at seq.
func (h *harness) jobGone(seq uint64) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		_, err := h.call.GetMsg(context.Background(), seq)
		return err != nil
	}, 15*time.Second, 20*time.Millisecond, "job %d still queued", seq)
}

func received(t *testing.T, ch chan *nats.Msg, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s", what)
	}
}

// A queued call that is cancelled ends cancelled and its job never runs.
func TestCallCancelQueued(t *testing.T) {
	t.Parallel()
	h := start(t)
	seq := h.queueCall("sales", "q1", time.Now().Add(time.Hour), 0, nil)
	h.record("sales", "q1", calls.StateQueued)
	_, err := h.call.GetMsg(context.Background(), seq)
	require.NoError(t, err)
	h.callEvent(calls.Event{Event: calls.EventCancelled, Model: "sales", CallID: "q1", Message: "asked by the gateway"}, "sales.q1.cancelled")
	code, _ := h.failedStatus("sales", "q1")
	require.Equal(t, "cancelled", code)
	require.Equal(t, "cancelled", h.record("sales", "q1", calls.StateFailed).Error.Code)
	h.jobGone(seq)
	require.Equal(t, "q1", h.deadCall("sales").CallID)
}

// A running call that is cancelled ends cancelled at once, its worker is
// told to stop, and what the worker sends later is dropped.
func TestCallCancelRunning(t *testing.T) {
	t.Parallel()
	h := start(t)
	stop := h.cancels("sales", "r1")
	seq := h.queueCall("sales", "r1", time.Now().Add(time.Hour), 0, nil)
	// The worker has the job: for TT_CALL it is gone.
	require.NoError(t, h.call.DeleteMsg(context.Background(), seq))
	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "r1", Attempt: 1, Worker: "w-1"}, "")
	h.callEvent(calls.Event{Event: calls.EventProgress, Model: "sales", CallID: "r1", Attempt: 1, Worker: "w-1",
		Fraction: 0.1}, "sales.r1.1.progress.1")
	h.record("sales", "r1", calls.StateRunning)
	h.callEvent(calls.Event{Event: calls.EventCancelled, Model: "sales", CallID: "r1"}, "sales.r1.cancelled")
	received(t, stop, "cancel of the running call")
	code, _ := h.failedStatus("sales", "r1")
	require.Equal(t, "cancelled", code)

	// The worker finishes anyway, then reports it was cancelled.
	h.putResult("sales", "r1", 1, []byte(`[]`))
	h.callEvent(calls.Event{Event: calls.EventDone, Model: "sales", CallID: "r1", Attempt: 1, Worker: "w-1",
		ContentType: subject.ContentJSON}, "")
	h.processed(h.callEvent(calls.Event{Event: calls.EventFailed, Model: "sales", CallID: "r1", Attempt: 1, Worker: "w-1",
		Error: &calls.Error{Code: "cancelled", Message: "stopped"}, Final: true}, ""))
	msgs := h.ntfs(h.names.NtfRequest("sales", "r1"))
	require.Len(t, msgs, 2) // the progress and the one terminal
	require.Equal(t, subject.StatusProgress, msgs[0].Header.Get(subject.HeaderStatus))
	require.Equal(t, subject.StatusFailed, msgs[1].Header.Get(subject.HeaderStatus))
	_, err := h.blobs.Get(context.Background(), "calls/sales/r1/1")
	require.Error(t, err, "the late result is deleted")
	require.Equal(t, "cancelled", h.record("sales", "r1", calls.StateFailed).Error.Code)
}

// A call whose deadline passes ends deadline_exceeded, its job removed
// and its worker told to stop.
func TestCallDeadline(t *testing.T) {
	t.Parallel()
	h := start(t)
	stop := h.cancels("sales", "d1")
	seq := h.queueCall("sales", "d1", time.Now().Add(500*time.Millisecond), 0, nil)
	code, msg := h.failedStatus("sales", "d1")
	require.Equal(t, "deadline_exceeded", code)
	require.Contains(t, msg, "deadline")
	received(t, stop, "cancel at the deadline")
	h.jobGone(seq)
	require.Equal(t, "deadline_exceeded", h.record("sales", "d1", calls.StateFailed).Error.Code)
}

// A new notifier times the calls its predecessor was timing, from
// tt_calls.
func TestCallDeadlineAfterRestart(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.stop()
	// Written as the previous leader would have, before it stopped.
	rec := calls.Record{CallID: "d2", Model: "sales", Function: "describe", State: calls.StateRunning,
		Deadline: time.Now().Add(500 * time.Millisecond).UTC().Format(time.RFC3339Nano)}
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = h.calls.Create(context.Background(), "sales.d2", b)
	require.NoError(t, err)
	_, err = h.calls.Create(context.Background(), "sales.ok", []byte(`{"call_id":"ok","model":"sales","state":"done","deadline":"2000-01-01T00:00:00Z"}`))
	require.NoError(t, err)
	h.run(notifier.Config{Names: h.names})
	code, _ := h.failedStatus("sales", "d2")
	require.Equal(t, "deadline_exceeded", code)
	require.Zero(t, h.count(h.names.NtfRequest("sales", "ok")))
}

// A call fails for good only on a final failure: with every attempt's
// error in its record, the last one's as its outcome, and the record in
// the dead letters.
func TestCallFinalFailure(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.queueCall("sales", "f1", time.Now().Add(time.Hour), 0, nil)
	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "f1", Attempt: 1, Worker: "w-1"}, "")
	h.processed(h.callEvent(calls.Event{Event: calls.EventFailed, Model: "sales", CallID: "f1", Attempt: 1, Worker: "w-1",
		Error: &calls.Error{Code: "internal", Message: "out of memory"}}, ""))
	rec := h.record("sales", "f1", calls.StateQueued)
	require.Equal(t, "out of memory", rec.Attempts[0].Error.Message)
	require.Zero(t, h.count(h.names.NtfRequest("sales", "f1")))

	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "f1", Attempt: 2, Worker: "w-2"}, "")
	h.callEvent(calls.Event{Event: calls.EventFailed, Model: "sales", CallID: "f1", Attempt: 2, Worker: "w-2",
		Error: &calls.Error{Code: "invalid_argument", Message: "no table orders"}, Final: true}, "")
	code, msg := h.failedStatus("sales", "f1")
	require.Equal(t, "invalid_argument", code)
	require.Equal(t, "no table orders", msg)
	rec = h.record("sales", "f1", calls.StateFailed)
	require.Len(t, rec.Attempts, 2)
	require.Equal(t, "w-2", rec.Attempts[1].Worker)
	dead := h.deadCall("sales")
	require.Equal(t, "f1", dead.CallID)
	require.Len(t, dead.Attempts, 2)
	require.Equal(t, "out of memory", dead.Attempts[0].Error.Message)
}

// A call the dispatcher refuses, never queued, ends with the dispatcher's
// error.
func TestCallRefused(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.callEvent(calls.Event{Event: calls.EventFailed, Model: "sales", CallID: "x1", Function: "nope",
		Error: &calls.Error{Code: "not_found", Message: "no function nope"}, Final: true}, "")
	code, _ := h.failedStatus("sales", "x1")
	require.Equal(t, "not_found", code)
	rec := h.record("sales", "x1", calls.StateFailed)
	require.Equal(t, "nope", rec.Function)
	require.Equal(t, uint64(1), h.count(h.names.NtfRequest("sales", "x1")))
}
