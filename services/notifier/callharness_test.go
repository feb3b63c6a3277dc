package notifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// queueCall does what the dispatcher does for a call: it queues the job
// on TT_CALL, then publishes the queued event. It returns the job's
// sequence in TT_CALL.
func (h *harness) queueCall(model, id string, deadline time.Time, pageRows int, out *calls.Output) uint64 {
	h.t.Helper()
	job := calls.Job{
		CallID: id, Model: model, Function: "describe", Handler: "describe", MaxAttempts: 3,
		Args: map[string]any{"table": "orders"}, Deadline: deadline.UTC().Format(time.RFC3339Nano),
		QueuedAt: time.Now().UTC().Format(time.RFC3339Nano), Input: calls.Version{Model: model, Version: 7},
		PageRows: pageRows,
	}
	b, err := json.Marshal(job)
	require.NoError(h.t, err)
	m := nats.NewMsg(h.names.Call("describe@go", model))
	m.Data = b
	m.Header.Set(subject.HeaderMsgID, "job."+model+"."+id)
	ack, err := h.js.PublishMsg(context.Background(), m)
	require.NoError(h.t, err)
	h.callEvent(calls.Event{Event: calls.EventQueued, Model: model, CallID: id, Job: &job,
		Route: "describe@go", JobSeq: ack.Sequence, Output: out}, "")
	return ack.Sequence
}

// callEvent publishes ev on tt.evt.<model>.call as a worker would, with
// the contract's Nats-Msg-Id (or msgID) and returns its TT_EVT sequence.
func (h *harness) callEvent(ev calls.Event, msgID string) uint64 {
	h.t.Helper()
	if msgID == "" {
		msgID = fmt.Sprintf("%s.%s.%d.%s", ev.Model, ev.CallID, ev.Attempt, ev.Event)
	}
	b, err := json.Marshal(ev)
	require.NoError(h.t, err)
	return h.publishEvent(h.names.Evt(ev.Model, subject.EventCall), b, msgID)
}

// putResult writes attempt a's result as a worker would.
func (h *harness) putResult(model, id string, a int, body []byte) {
	h.t.Helper()
	_, err := h.blobs.Put(context.Background(), "calls/"+model+"/"+id+"/"+strconv.Itoa(a), bytes.NewReader(body))
	require.NoError(h.t, err)
}

// record returns the call's record once it is in state.
func (h *harness) record(model, id, state string) *calls.Record {
	h.t.Helper()
	var rec calls.Record
	require.Eventually(h.t, func() bool {
		e, err := h.calls.Get(context.Background(), model+"."+id)
		if err != nil {
			return false
		}
		rec = calls.Record{}
		require.NoError(h.t, json.Unmarshal(e.Value(), &rec))
		return rec.State == state
	}, 15*time.Second, 20*time.Millisecond, "call %s.%s never %s", model, id, state)
	return &rec
}

// ntfs returns every notification on subj, in order.
func (h *harness) ntfs(subj string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	var out []*jetstream.RawStreamMsg
	info, err := h.ntf.Info(ctx)
	require.NoError(h.t, err)
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := h.ntf.GetMsg(ctx, seq)
		if err == nil && m.Subject == subj {
			out = append(out, m)
		}
	}
	return out
}

// failedStatus waits for the call's terminal failed notification and
// returns its error code and message.
func (h *harness) failedStatus(model, id string) (code, msg string) {
	h.t.Helper()
	raw := h.notification(h.names.NtfRequest(model, id))
	require.Eventually(h.t, func() bool {
		raw = h.notification(h.names.NtfRequest(model, id))
		return raw.Header.Get(subject.HeaderStatus) == subject.StatusFailed
	}, 15*time.Second, 20*time.Millisecond)
	var body struct {
		Op    string      `json:"op"`
		Error calls.Error `json:"error"`
	}
	require.NoError(h.t, json.Unmarshal(raw.Data, &body))
	require.Equal(h.t, subject.OpCall, body.Op)
	return body.Error.Code, body.Error.Message
}
