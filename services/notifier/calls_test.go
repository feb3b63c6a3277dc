package notifier_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// A call's progress is notified, then its JSON result as pages of at most
// page_rows rows; a done delivered again notifies nothing more.
func TestCallProgressThenJSONPages(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.queueCall("sales", "c1", time.Now().Add(time.Hour), 2, nil)
	rec := h.record("sales", "c1", calls.StateQueued)
	require.Equal(t, "describe", rec.Function)
	require.Equal(t, "describe@go", rec.Route)
	require.Equal(t, 3, rec.MaxAttempts)
	require.Equal(t, uint64(7), rec.Version)
	require.NotZero(t, rec.JobSeq)

	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "c1", Attempt: 1, Worker: "w-1"}, "")
	rec = h.record("sales", "c1", calls.StateRunning)
	require.Equal(t, "w-1", rec.Worker)
	require.Len(t, rec.Attempts, 1)
	require.NotEmpty(t, rec.Attempts[0].StartedAt)

	h.callEvent(calls.Event{Event: calls.EventProgress, Model: "sales", CallID: "c1", Attempt: 1, Worker: "w-1",
		Fraction: 0.5, Message: "2 of 4 columns"}, "sales.c1.1.progress.1")
	raw := h.notification(h.names.NtfRequest("sales", "c1"))
	require.Equal(t, subject.StatusProgress, raw.Header.Get(subject.HeaderStatus))
	require.Equal(t, "sales", raw.Header.Get(subject.HeaderModel))
	require.Equal(t, "c1", raw.Header.Get(subject.HeaderRequestID))
	require.Equal(t, subject.ContentJSON, raw.Header.Get(subject.HeaderContentType))
	require.JSONEq(t, `{"fraction":0.5,"message":"2 of 4 columns"}`, string(raw.Data))

	h.putResult("sales", "c1", 1, []byte(`[{"a":1},{"a":2},{"a":3},{"a":4},{"a":5}]`))
	done := calls.Event{Event: calls.EventDone, Model: "sales", CallID: "c1", Attempt: 1, Worker: "w-1",
		ContentType: subject.ContentJSON, Rows: 5}
	h.callEvent(done, "")
	rec = h.record("sales", "c1", calls.StateDone)
	require.Equal(t, &calls.ResultInfo{Pages: 3, Rows: 5, ContentType: subject.ContentJSON}, rec.Result)
	require.Nil(t, rec.Progress)

	msgs := h.ntfs(h.names.NtfRequest("sales", "c1"))
	require.Len(t, msgs, 4)
	want := []string{`[{"a":1},{"a":2}]`, `[{"a":3},{"a":4}]`, `[{"a":5}]`}
	for i, m := range msgs[1:] {
		require.Equal(t, subject.StatusResult, m.Header.Get(subject.HeaderStatus))
		require.Equal(t, strconv.Itoa(i+1), m.Header.Get(subject.HeaderPage))
		require.Equal(t, "3", m.Header.Get(subject.HeaderPages))
		require.Equal(t, "5", m.Header.Get(subject.HeaderRows))
		require.Equal(t, subject.ContentJSON, m.Header.Get(subject.HeaderContentType))
		require.Equal(t, "c1", m.Header.Get(subject.HeaderRequestID))
		require.Equal(t, "sales", m.Header.Get(subject.HeaderModel))
		require.Equal(t, subject.RequestNtfMsgID("sales", "c1", i+1), m.Header.Get(subject.HeaderMsgID))
		require.JSONEq(t, want[i], string(m.Data))
	}

	// The same done again, and a progress after the end: nothing more.
	h.callEvent(calls.Event{Event: calls.EventProgress, Model: "sales", CallID: "c1", Attempt: 1, Worker: "w-1",
		Fraction: 0.9}, "sales.c1.1.progress.2")
	h.processed(h.callEvent(done, "sales.c1.1.done.again"))
	require.Len(t, h.ntfs(h.names.NtfRequest("sales", "c1")), 4)
	require.Equal(t, calls.StateDone, h.record("sales", "c1", calls.StateDone).State)
}

// An Arrow result is paged into whole IPC streams.
func TestCallArrowPages(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.queueCall("sales", "c2", time.Now().Add(time.Hour), 2, nil)
	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "c2", Attempt: 1, Worker: "w-1"}, "")
	h.putResult("sales", "c2", 1, arrowRows(t, 1, 2, 3, 4, 5))
	h.callEvent(calls.Event{Event: calls.EventDone, Model: "sales", CallID: "c2", Attempt: 1, Worker: "w-1",
		ContentType: subject.ContentArrow, Rows: 5}, "")
	h.record("sales", "c2", calls.StateDone)

	msgs := h.ntfs(h.names.NtfRequest("sales", "c2"))
	require.Len(t, msgs, 3)
	var got [][]int64
	for _, m := range msgs {
		require.Equal(t, subject.ContentArrow, m.Header.Get(subject.HeaderContentType))
		got = append(got, readArrowRows(t, m.Data))
	}
	require.Equal(t, [][]int64{{1, 2}, {3, 4}, {5}}, got)
}

// A result that is not what its worker said ends the call internal, named
// after the worker, and the call's record is a dead letter.
func TestCallGarbageResultFailsInternal(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.queueCall("sales", "c3", time.Now().Add(time.Hour), 0, nil)
	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "c3", Attempt: 1, Worker: "w-9"}, "")
	h.putResult("sales", "c3", 1, []byte("this is not json"))
	h.callEvent(calls.Event{Event: calls.EventDone, Model: "sales", CallID: "c3", Attempt: 1, Worker: "w-9",
		ContentType: subject.ContentJSON, Rows: 1}, "")
	code, msg := h.failedStatus("sales", "c3")
	require.Equal(t, "internal", code)
	require.Contains(t, msg, "w-9")
	rec := h.record("sales", "c3", calls.StateFailed)
	require.Equal(t, "internal", rec.Error.Code)

	dead := h.deadCall("sales")
	require.Equal(t, "c3", dead.CallID)
	require.Equal(t, calls.StateFailed, dead.State)
}

// The write-back of a call with an output is one append mutation,
// however often done comes and from however many attempts.
func TestCallWriteBackOnce(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.queueCall("sales", "c4", time.Now().Add(time.Hour), 0, &calls.Output{Table: "stats", Mode: "replace"})
	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "c4", Attempt: 1, Worker: "w-1"}, "")
	h.callEvent(calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "c4", Attempt: 2, Worker: "w-2"}, "")
	body := arrowRows(t, 1, 2)
	h.putResult("sales", "c4", 1, body)
	h.putResult("sales", "c4", 2, body)
	done := calls.Event{Event: calls.EventDone, Model: "sales", CallID: "c4", Attempt: 2, Worker: "w-2",
		ContentType: subject.ContentArrow, Rows: 2}
	h.callEvent(done, "")
	h.callEvent(done, "sales.c4.2.done.again")
	done.Attempt, done.Worker = 1, "w-1"
	h.processed(h.callEvent(done, ""))
	rec := h.record("sales", "c4", calls.StateDone)
	require.Equal(t, 2, rec.Attempt)
	require.Equal(t, &calls.WriteBack{RequestID: "fn-c4", Table: "stats", Mode: "replace"}, rec.WriteBack)

	info, err := h.mut.Info(context.Background(), jetstream.WithSubjectFilter(h.names.Mut("sales", "append")))
	require.NoError(t, err)
	require.Equal(t, uint64(1), info.State.Subjects[h.names.Mut("sales", "append")])
	m, err := h.mut.GetLastMsgForSubject(context.Background(), h.names.Mut("sales", "append"))
	require.NoError(t, err)
	require.Equal(t, "sales.fn-c4", m.Header.Get(subject.HeaderMsgID))
	require.Equal(t, "stats", m.Header.Get(subject.HeaderTable))
	require.Equal(t, subject.ContentArrow, m.Header.Get(subject.HeaderContentType))
	require.Equal(t, "uploads/sales/fn-c4", m.Header.Get(subject.HeaderBodyRef))
	require.Equal(t, "replace", m.Header.Get(subject.HeaderMode))
	up, err := h.blobs.Get(context.Background(), "uploads/sales/fn-c4")
	require.NoError(t, err)
	require.Equal(t, body, up)

	// The late attempt's result is deleted; the call's own is kept.
	_, err = h.blobs.Get(context.Background(), "calls/sales/c4/1")
	require.Error(t, err)
	_, err = h.blobs.Get(context.Background(), "calls/sales/c4/2")
	require.NoError(t, err)
	require.Len(t, h.ntfs(h.names.NtfRequest("sales", "c4")), 1)
}

// arrowRows is an Arrow IPC stream of one int64 column a, in two batches.
func arrowRows(t *testing.T, vals ...int64) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "a", Type: arrow.PrimitiveTypes.Int64}}, nil)
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	for _, part := range [][]int64{vals[:len(vals)/2], vals[len(vals)/2:]} {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		b.Field(0).(*array.Int64Builder).AppendValues(part, nil)
		rec := b.NewRecordBatch()
		require.NoError(t, w.Write(rec))
		rec.Release()
		b.Release()
	}
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// readArrowRows reads column a of a whole Arrow IPC stream.
func readArrowRows(t *testing.T, body []byte) []int64 {
	t.Helper()
	rd, err := ipc.NewReader(bytes.NewReader(body))
	require.NoError(t, err)
	defer rd.Release()
	var out []int64
	for rd.Next() {
		out = append(out, rd.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
	}
	require.NoError(t, rd.Err())
	return out
}

// deadCall waits for the newest call dead letter of model.
func (h *harness) deadCall(model string) *calls.Record {
	h.t.Helper()
	var rec calls.Record
	require.Eventually(h.t, func() bool {
		m, err := h.dead.GetLastMsgForSubject(context.Background(), h.names.Dead(model))
		return err == nil && json.Unmarshal(m.Data, &rec) == nil
	}, 15*time.Second, 20*time.Millisecond, "no dead letter of %s", model)
	return &rec
}

// A done delivered again after some of its pages were published goes on
// after the last one.
func TestCallPagesResume(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.queueCall("sales", "c5", time.Now().Add(time.Hour), 1, nil)
	h.record("sales", "c5", calls.StateQueued)
	// Page 1 of 3, as a notifier that stopped after it left it.
	m := nats.NewMsg(h.names.NtfRequest("sales", "c5"))
	m.Data = []byte(`[{"a":1}]`)
	m.Header.Set(subject.HeaderMsgID, subject.RequestNtfMsgID("sales", "c5", 1))
	m.Header.Set(subject.HeaderStatus, subject.StatusResult)
	m.Header.Set(subject.HeaderPage, "1")
	m.Header.Set(subject.HeaderPages, "3")
	_, err := h.js.PublishMsg(context.Background(), m)
	require.NoError(t, err)

	h.putResult("sales", "c5", 1, []byte(`[{"a":1},{"a":2},{"a":3}]`))
	h.callEvent(calls.Event{Event: calls.EventDone, Model: "sales", CallID: "c5", Attempt: 1, Worker: "w-1",
		ContentType: subject.ContentJSON, Rows: 3}, "")
	h.record("sales", "c5", calls.StateDone)
	msgs := h.ntfs(h.names.NtfRequest("sales", "c5"))
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		require.Equal(t, strconv.Itoa(i+1), m.Header.Get(subject.HeaderPage))
	}
	require.JSONEq(t, `[{"a":3}]`, string(msgs[2].Data))
}

// A result with other rows than its worker reported, or of a type it did
// not say, is not used.
func TestCallResultNotWhatItSaid(t *testing.T) {
	t.Parallel()
	h := start(t)
	for _, c := range []struct{ id, ct, body string }{
		{"rows", subject.ContentJSON, `[{"a":1}]`},
		{"scalars", subject.ContentJSON, `[1,2]`},
		{"csv", subject.ContentCSV, "a\n1\n"},
		{"arrow", subject.ContentArrow, `[{"a":1},{"a":2}]`},
	} {
		h.queueCall("sales", c.id, time.Now().Add(time.Hour), 0, nil)
		h.putResult("sales", c.id, 1, []byte(c.body))
		h.callEvent(calls.Event{Event: calls.EventDone, Model: "sales", CallID: c.id, Attempt: 1, Worker: "w-1",
			ContentType: c.ct, Rows: 2}, "")
		code, msg := h.failedStatus("sales", c.id)
		require.Equal(t, "internal", code, c.id)
		require.Contains(t, msg, "w-1", c.id)
	}
}
