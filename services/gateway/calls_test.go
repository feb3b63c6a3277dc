package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// putRecord writes a call's record into tt_calls, as the notifier does.
func (e *testEnv) putRecord(t *testing.T, rec calls.Record) {
	t.Helper()
	b, err := json.Marshal(rec)
	require.NoError(t, err)
	_, err = e.calls.Put(context.Background(), subject.MsgID(rec.Model, rec.CallID), b)
	require.NoError(t, err)
}

func decodeRecord(t *testing.T, r response) calls.Record {
	t.Helper()
	require.Equal(t, subject.ContentJSON, r.header.Get("Content-Type"))
	var rec calls.Record
	require.NoError(t, json.Unmarshal(r.body, &rec), "body %s", r.body)
	return rec
}

func TestGetCall(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.putRecord(t, calls.Record{CallID: "c1", Model: "sales", Function: "describe", State: calls.StateRunning, Worker: "w-1", Attempt: 1})

	r := env.send(t, http.MethodGet, "/v1/models/sales/calls/c1", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	rec := decodeRecord(t, r)
	require.Equal(t, "w-1", rec.Worker)
	require.Equal(t, calls.StateRunning, rec.State)

	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/calls/c2", nil), http.StatusNotFound, "not_found")
	// The same call id on another model is another call.
	requireError(t, env.send(t, http.MethodGet, "/v1/models/crm/calls/c1", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/calls/a.b", nil), http.StatusBadRequest, "invalid_argument")
}

func TestDeleteCall(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.putRecord(t, calls.Record{CallID: "done", Model: "sales", Function: "describe", State: calls.StateDone})
	env.putRecord(t, calls.Record{CallID: "run", Model: "sales", Function: "describe", State: calls.StateQueued})
	evts := env.nats.Evt

	requireError(t, env.send(t, http.MethodDelete, "/v1/models/sales/calls/none", nil), http.StatusNotFound, "not_found")

	// An ended call stays as it ended: nothing to cancel.
	r := env.send(t, http.MethodDelete, "/v1/models/sales/calls/done", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.Equal(t, calls.StateDone, decodeRecord(t, r).State)
	_, err := evts.GetLastMsgForSubject(context.Background(), env.names.Evt("sales", subject.EventCall))
	require.ErrorIs(t, err, jetstream.ErrMsgNotFound)

	r = env.send(t, http.MethodDelete, "/v1/models/sales/calls/run", nil)
	require.Equal(t, http.StatusAccepted, r.status, "body %s", r.body)
	require.Equal(t, "run", decodeRecord(t, r).CallID)
	raw, err := evts.GetLastMsgForSubject(context.Background(), env.names.Evt("sales", subject.EventCall))
	require.NoError(t, err)
	require.Equal(t, "sales.run.cancelled", raw.Header.Get(subject.HeaderMsgID))
	var ev calls.Event
	require.NoError(t, json.Unmarshal(raw.Data, &ev))
	require.Equal(t, calls.EventCancelled, ev.Event)
	require.Equal(t, "sales", ev.Model)
	require.Equal(t, "run", ev.CallID)
}

func TestListWorkers(t *testing.T) {
	t.Parallel()
	env := start(t)
	var list struct {
		Workers []calls.Heartbeat `json:"workers"`
	}
	r := env.send(t, http.MethodGet, "/v1/workers", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"workers":[]}`, string(r.body))

	for _, id := range []string{"w-2", "w-1"} {
		b, err := json.Marshal(calls.Heartbeat{ID: id, Capabilities: []string{"go"}, Handlers: []string{"describe"}, Slots: 2, Running: []string{"sales.c1"}, Lang: "go"})
		require.NoError(t, err)
		_, err = env.compute.Put(context.Background(), id, b)
		require.NoError(t, err)
	}
	r = env.send(t, http.MethodGet, "/v1/workers", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Len(t, list.Workers, 2)
	require.Equal(t, "w-1", list.Workers[0].ID)
	require.Equal(t, "w-2", list.Workers[1].ID)
	require.Equal(t, []string{"sales.c1"}, list.Workers[0].Running)
}
