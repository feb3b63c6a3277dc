package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// teatreeCLI runs the teatree binary with args and returns its output.
func teatreeCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, args...).Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "teatree %v: %s", args, stderr)
	return string(out)
}

// TestComputeCall drives a compute call as a worker in any language
// would see it: a function in tt_functions and a heartbeat in tt_compute,
// written with plain nats.go; the call on tt.call.fn.<model>; its job on
// tt.call.<route>.<model> and the queued event; then the CLI's workers
// and calls commands against the gateway.
func TestComputeCall(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	ctx := context.Background()
	createModel(t, s, `{"id":"sales","snapshot":{"interval_ms":1,"every_mutations":1000,"keep":3}}`)
	seq := publish(t, js, "tt.mut.sales.sql", "sales.r1", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"sql":"create table orders as select 1 as id"}`))
	st, _ := waitNotification(t, js, "sales", "r1")
	require.Equal(t, "applied", st.Status, "%v", st)

	fns, err := js.KeyValue(ctx, "tt_functions")
	require.NoError(t, err)
	_, err = fns.Put(ctx, "sales.describe", []byte(`{"model":"sales","name":"describe","kind":"compute","capabilities":["go"],"handler":"describe",
		"params":[{"name":"table","type":"VARCHAR","required":true}]}`))
	require.NoError(t, err)
	compute, err := js.KeyValue(ctx, "tt_compute")
	require.NoError(t, err)
	_, err = compute.Put(ctx, "w-1", []byte(`{"id":"w-1","capabilities":["go"],"handlers":["describe"],"slots":4,"running":[],"lang":"go"}`))
	require.NoError(t, err)

	publish(t, js, "tt.call.fn.sales", "sales.c1", nil, []byte(`{"function":"describe","args":{"table":"orders"},"min_seq":`+itoa(seq)+`}`))
	calls, err := js.Stream(ctx, "TT_CALL")
	require.NoError(t, err)
	var job struct {
		CallID string `json:"call_id"`
		Input  struct {
			Version    uint64 `json:"version"`
			AppliedSeq uint64 `json:"applied_seq"`
			DuckDB     struct {
				URL string `json:"url"`
			} `json:"duckdb"`
		} `json:"input"`
		Results []struct {
			URL string `json:"url"`
		} `json:"results"`
	}
	require.Eventually(t, func() bool {
		raw, err := calls.GetLastMsgForSubject(ctx, "tt.call.describe@go.sales")
		return err == nil && json.Unmarshal(raw.Data, &job) == nil
	}, time.Minute, 20*time.Millisecond, "no job on tt.call.describe@go.sales")
	require.Equal(t, "c1", job.CallID)
	require.GreaterOrEqual(t, job.Input.AppliedSeq, seq)
	u, err := url.Parse(job.Input.DuckDB.URL)
	require.NoError(t, err)
	_, err = os.Stat(u.Path)
	require.NoError(t, err, "the job's model.duckdb")
	require.Len(t, job.Results, 3)

	evts, err := js.Stream(ctx, "TT_EVT")
	require.NoError(t, err)
	raw, err := evts.GetLastMsgForSubject(ctx, "tt.evt.sales.call")
	require.NoError(t, err)
	require.Equal(t, "sales.c1.queued", raw.Header.Get("Nats-Msg-Id"))

	out := teatreeCLI(t, "workers", "--server", s.url(""))
	require.Contains(t, out, "w-1")
	require.Contains(t, out, "describe")

	records, err := js.KeyValue(ctx, "tt_calls")
	require.NoError(t, err)
	_, err = records.Put(ctx, "sales.c9", []byte(`{"call_id":"c9","model":"sales","function":"describe","state":"running"}`))
	require.NoError(t, err)
	require.Contains(t, teatreeCLI(t, "calls", "show", "sales", "c9", "--server", s.url("")), `"state":"running"`)
	require.Contains(t, teatreeCLI(t, "calls", "cancel", "sales", "c9", "--server", s.url("")), `"call_id":"c9"`)
	raw, err = evts.GetLastMsgForSubject(ctx, "tt.evt.sales.call")
	require.NoError(t, err)
	require.Equal(t, "sales.c9.cancelled", raw.Header.Get("Nats-Msg-Id"))

	status, body, _ := do(t, http.MethodGet, s.url("/v1/models/sales/calls/nope"), "", nil)
	require.Equal(t, http.StatusNotFound, status, string(body))
	require.True(t, strings.Contains(string(body), "not_found"), string(body))
}
