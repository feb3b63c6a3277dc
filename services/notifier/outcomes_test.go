package notifier_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func TestOutcomesBecomeOneNotificationPerStatus(t *testing.T) {
	t.Parallel()
	h := start(t)
	rows := int64(1000)
	h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{{
		RequestId: "r1", Model: "sales", Op: subject.OpAppend, Status: subject.StatusApplied,
		Seq: 42, RowsAffected: &rows, AppliedAt: "2026-11-23T10:00:00Z",
	}, {
		RequestId: "r2", Model: "sales", Op: subject.OpSQL, Status: subject.StatusFailed, Seq: 43,
		AppliedAt: "2026-11-23T10:00:01Z",
		Error:     &teatreev1.Error{Code: "sql_error", Message: `Binder Error: column "x" not found`},
	}}}, subject.OutcomesMsgID("sales", 43, 0))

	cases := []struct {
		id, status, seq, body string
	}{
		{"r1", "applied", "42", `{"request_id":"r1","model":"sales","op":"append","status":"applied",
			"seq":42,"rows_affected":1000,"applied_at":"2026-11-23T10:00:00Z"}`},
		{"r2", "failed", "43", `{"request_id":"r2","model":"sales","op":"sql","status":"failed","seq":43,
			"applied_at":"2026-11-23T10:00:01Z",
			"error":{"code":"sql_error","message":"Binder Error: column \"x\" not found"}}`},
	}
	var seqs []uint64
	for _, c := range cases {
		raw := h.notification(h.names.NtfRequest("sales", c.id))
		seqs = append(seqs, raw.Sequence)
		require.Equal(t, "sales", raw.Header.Get(subject.HeaderModel))
		require.Equal(t, c.id, raw.Header.Get(subject.HeaderRequestID))
		require.Equal(t, c.status, raw.Header.Get(subject.HeaderStatus))
		require.Equal(t, c.seq, raw.Header.Get(subject.HeaderSeq))
		require.Equal(t, "1", raw.Header.Get(subject.HeaderPage))
		require.Equal(t, "1", raw.Header.Get(subject.HeaderPages))
		require.Equal(t, "application/json", raw.Header.Get(subject.HeaderContentType))
		require.Equal(t, subject.RequestNtfMsgID("sales", c.id, 1), raw.Header.Get(subject.HeaderMsgID))
		require.JSONEq(t, c.body, string(raw.Data))
	}
	require.Less(t, seqs[0], seqs[1], "notifications keep the order of the statuses")
	require.EqualValues(t, 2, h.count(h.names.NtfModel("sales")))
}

func TestSameEventTwiceYieldsOneNotification(t *testing.T) {
	t.Parallel()
	h := start(t)
	ev := &teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{{
		RequestId: "r1", Model: "sales", Op: subject.OpSQL, Status: subject.StatusApplied, Seq: 7,
	}}}
	// Two copies reach the notifier (a retry after a crash, published
	// under different ids so that TT_EVT keeps both).
	h.publishOutcomes(ev, "first")
	seq := h.publishOutcomes(ev, "second")
	h.processed(seq)

	h.notification(h.names.NtfRequest("sales", "r1"))
	require.EqualValues(t, 1, h.count(h.names.NtfModel("sales")))
}

// An event whose statuses were partly notified already (a batch that
// overlaps an earlier one) still yields exactly one notification each: the
// atomic batch is refused for the duplicates and published one by one.
func TestOverlappingEventsYieldOneNotificationEach(t *testing.T) {
	t.Parallel()
	h := start(t)
	status := func(id string, seq uint64) *teatreev1.RequestStatus {
		return &teatreev1.RequestStatus{RequestId: id, Model: "sales", Op: subject.OpSQL, Status: subject.StatusApplied, Seq: seq}
	}
	h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{status("r1", 1), status("r2", 2)}}, "first")
	seq := h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{
		status("r1", 1), status("r2", 2), status("r3", 3), status("r4", 4)}}, "second")
	h.processed(seq)

	for _, id := range []string{"r1", "r2", "r3", "r4"} {
		raw := h.notification(h.names.NtfRequest("sales", id))
		require.Equal(t, id, raw.Header.Get(subject.HeaderRequestID))
	}
	require.EqualValues(t, 4, h.count(h.names.NtfModel("sales")))
}

func TestReplayAddsNothingForANotifiedRequest(t *testing.T) {
	t.Parallel()
	h := start(t)
	// r1 was notified long ago: outside the duplicate window its message
	// id no longer protects it, so it is here under another id.
	old := h.publishEvent(h.names.NtfRequest("sales", "r1"), []byte(`{"request_id":"r1","status":"applied"}`), "from-long-ago")
	seq := h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Replay: true, Statuses: []*teatreev1.RequestStatus{
		{RequestId: "r1", Model: "sales", Op: subject.OpSQL, Status: subject.StatusApplied, Seq: 1},
		{RequestId: "r2", Model: "sales", Op: subject.OpSQL, Status: subject.StatusFailed, Seq: 2,
			Error: &teatreev1.Error{Code: "sql_error", Message: "bad"}},
	}}, subject.OutcomesMsgID("sales", 2, 0))
	h.processed(seq)

	raw := h.notification(h.names.NtfRequest("sales", "r2"))
	require.Equal(t, "failed", raw.Header.Get(subject.HeaderStatus), "a request without a notification gets one")
	raw = h.notification(h.names.NtfRequest("sales", "r1"))
	require.Equal(t, old, raw.Sequence, "the old notification is still the only one")
	require.EqualValues(t, 2, h.count(h.names.NtfModel("sales")))
}

func TestMalformedEventIsDropped(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.publishEvent(h.names.Evt("sales", subject.EventOutcomes), []byte("\xff\xff not protobuf"), "bad")
	h.publishEvent(h.names.Evt("sales", subject.EventSnapshot), []byte("not json"), "bad-snap")
	h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{{
		RequestId: "r1", Model: "sales", Op: subject.OpSQL, Status: subject.StatusApplied, Seq: 1,
	}}}, "good")

	h.notification(h.names.NtfRequest("sales", "r1"))
	require.EqualValues(t, 1, h.count(h.names.NtfModel("sales")))
}
