package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/stretchr/testify/require"
)

// computeServer is `teatree up` with a model `shop` whose table `orders`
// has rows rows, and a Go worker and a Node.js worker.
type computeServer struct {
	*server
	natsURL string
}

func startComputeServer(t *testing.T, rows int) *computeServer {
	t.Helper()
	s := startServer(t)
	createModel(t, s, `{"id":"shop"}`)
	code, body, _ := do(t, http.MethodPost, s.url("/v1/models/shop/sql?wait=applied"), "application/json",
		fmt.Appendf(nil, `{"sql":"CREATE TABLE orders AS SELECT i AS id, 'item-' || (i %% 7) AS item, i * 1.5 AS amount FROM range(%d) t(i)"}`, rows))
	require.Equal(t, http.StatusOK, code, string(body))
	return &computeServer{server: s, natsURL: s.natsURL()}
}

// resultRows decodes a call's result pages (Arrow or JSON) and counts
// their rows, requiring the pages to be 1..n in order.
func resultRows(t *testing.T, s *computeServer, id string) (rows int64, pages int) {
	t.Helper()
	_, js := s.connect(t)
	msgs := callMessages(t, js, "shop", id)
	for _, m := range msgs {
		if m.Header.Get("Tt-Status") != "result" {
			continue
		}
		pages++
		require.Equal(t, fmt.Sprint(pages), m.Header.Get("Tt-Page"))
		switch ct := m.Header.Get("Content-Type"); ct {
		case "application/vnd.apache.arrow.stream":
			r, err := ipc.NewReader(bytes.NewReader(m.Data))
			require.NoError(t, err)
			for r.Next() {
				rows += r.RecordBatch().NumRows()
			}
			require.NoError(t, r.Err())
			r.Release()
		case "application/json":
			var list []map[string]any
			require.NoError(t, json.Unmarshal(m.Data, &list), string(m.Data))
			rows += int64(len(list))
		default:
			t.Fatalf("result page with content type %q", ct)
		}
	}
	require.Equal(t, 1, terminals(msgs), "one terminal notification for %s", id)
	return rows, pages
}

// Functions over Go and Node.js workers, end to end through `teatree up`
// and worker processes: results, write-back, progress, cancel, deadline,
// retries, a missing capability.
func TestComputeFunctions(t *testing.T) {
	t.Parallel()
	s := startComputeServer(t, 25000)
	startGoWorker(t, s.natsURL, "go-1", 2)
	startNodeWorker(t, s, s.natsURL, "node-1", 2)

	putFunction(t, s, "shop", "describe", `{"kind":"compute","capabilities":["go"],"handler":"describe",
		"params":[{"name":"table","type":"VARCHAR","required":true}]}`)
	putFunction(t, s, "shop", "busiest", `{"kind":"compute","capabilities":["go"],"handler":"sql_to_table",
		"params":[{"name":"sql","type":"VARCHAR","required":true}],"output":{"table":"busiest","mode":"replace"}}`)
	putFunction(t, s, "shop", "slow", `{"kind":"compute","capabilities":["node"],"handler":"slow",
		"params":[{"name":"ms","type":"INTEGER","default":100},{"name":"steps","type":"INTEGER","default":3}]}`)
	putFunction(t, s, "shop", "flaky", `{"kind":"compute","capabilities":["node"],"handler":"fail","max_attempts":3,
		"params":[{"name":"times","type":"INTEGER","required":true}]}`)
	putFunction(t, s, "shop", "count", `{"kind":"compute","capabilities":["node"],"handler":"row_count",
		"params":[{"name":"table","type":"VARCHAR","required":true}]}`)

	t.Run("describe in pages", func(t *testing.T) {
		callAccepted(t, s, "shop", "describe", "d1", `{"table":"orders"}`)
		r := waitRecord(t, s, "shop", "d1", 2*time.Minute, "done", ended)
		require.Equal(t, "done", r.State, "%+v", r)
		rows, _ := resultRows(t, s, "d1")
		require.EqualValues(t, 3, rows, "one row per column of orders")
	})
	t.Run("over NATS, in pages", func(t *testing.T) {
		putFunction(t, s, "shop", "sample", `{"kind":"compute","capabilities":["go"],"handler":"sample",
			"params":[{"name":"table","type":"VARCHAR","required":true},{"name":"n","type":"INTEGER","default":10}]}`)
		_, js := s.connect(t)
		publish(t, js, "tt.call.fn.shop", "shop.p1", nil, []byte(`{"function":"sample","args":{"table":"orders","n":25},"page_rows":10}`))
		r := waitRecord(t, s, "shop", "p1", 2*time.Minute, "done", ended)
		require.Equal(t, "done", r.State, "%+v", r)
		rows, pages := resultRows(t, s, "p1")
		require.EqualValues(t, 25, rows)
		require.Equal(t, 3, pages, "25 rows in pages of 10")
	})
	t.Run("bad arguments", func(t *testing.T) {
		code, body := call(t, s, "shop", "describe", "d2", `{"tabel":"orders"}`, "")
		require.Equal(t, http.StatusBadRequest, code, string(body))
		require.Contains(t, string(body), "tabel")
		code, body = call(t, s, "shop", "nope", "d3", `{}`, "")
		require.Equal(t, http.StatusNotFound, code, string(body))
	})
	t.Run("write-back replaces a table once", func(t *testing.T) {
		var seq uint64
		for _, id := range []string{"w1", "w2"} {
			callAccepted(t, s, "shop", "busiest", id, `{"sql":"SELECT item, count(*) AS n FROM orders GROUP BY item"}`)
			r := waitRecord(t, s, "shop", id, 2*time.Minute, "done", ended)
			require.Equal(t, "done", r.State, "%+v", r)
			require.NotNil(t, r.WriteBack)
			_, js := s.connect(t)
			st, _ := waitNotification(t, js, "shop", r.WriteBack.RequestID)
			require.Equal(t, "applied", st.Status, "%+v", st)
			seq = st.Seq
		}
		require.EqualValues(t, 7, countRows(t, s.server, "shop", "SELECT count(*) AS n FROM busiest", seq), "replace, not append")
	})
	t.Run("a result that does not fit the output table", func(t *testing.T) {
		putFunction(t, s, "shop", "misfit", `{"kind":"compute","capabilities":["go"],"handler":"sql_to_table",
			"params":[{"name":"sql","type":"VARCHAR","required":true}],"output":{"table":"orders","mode":"append"}}`)
		callAccepted(t, s, "shop", "misfit", "m1", `{"sql":"SELECT 1 AS not_a_column"}`)
		r := waitRecord(t, s, "shop", "m1", 2*time.Minute, "done", ended)
		require.Equal(t, "done", r.State, "%+v", r)
		_, js := s.connect(t)
		st, _ := waitNotification(t, js, "shop", r.WriteBack.RequestID)
		requireError(t, st, "schema_mismatch")
		require.EqualValues(t, 25000, countRows(t, s.server, "shop", "SELECT count(*) AS n FROM orders", st.Seq), "orders unchanged")
	})
	t.Run("node worker result and progress", func(t *testing.T) {
		callAccepted(t, s, "shop", "count", "n1", `{"table":"orders"}`)
		callAccepted(t, s, "shop", "slow", "n2", `{"ms":200,"steps":4}`)
		for _, id := range []string{"n1", "n2"} {
			r := waitRecord(t, s, "shop", id, 2*time.Minute, "done", ended)
			require.Equal(t, "done", r.State, "%+v", r)
			require.Equal(t, "node-1", r.Worker)
		}
		_, js := s.connect(t)
		progress := 0
		for _, m := range callMessages(t, js, "shop", "n2") {
			if m.Header.Get("Tt-Status") == "progress" {
				progress++
			}
		}
		require.Positive(t, progress, "progress notifications before the result")
		resultRows(t, s, "n2")
	})
	t.Run("retry then success, retry then dead letter", func(t *testing.T) {
		callAccepted(t, s, "shop", "flaky", "f1", `{"times":1}`)
		callAccepted(t, s, "shop", "flaky", "f2", `{"times":10}`)
		r := waitRecord(t, s, "shop", "f1", 2*time.Minute, "done", ended)
		require.Equal(t, "done", r.State, "%+v", r)
		require.Equal(t, 2, r.Attempt)
		r = waitRecord(t, s, "shop", "f2", 2*time.Minute, "failed", ended)
		require.Equal(t, "failed", r.State, "%+v", r)
		require.Len(t, r.Attempts, 3, "every attempt kept with its error")
		for _, a := range r.Attempts {
			require.NotNil(t, a.Error, "%+v", a)
		}
		_, js := s.connect(t)
		require.Equal(t, 1, terminals(callMessages(t, js, "shop", "f2")))
	})
	t.Run("cancel running and queued, deadline", func(t *testing.T) {
		// node-1 has two slots: two long calls fill them, the third waits.
		callAccepted(t, s, "shop", "slow", "c1", `{"ms":600000,"steps":600}`)
		callAccepted(t, s, "shop", "slow", "c2", `{"ms":600000,"steps":600}`)
		waitRecord(t, s, "shop", "c1", time.Minute, "running", func(r callRecord) bool { return r.State == "running" })
		waitRecord(t, s, "shop", "c2", time.Minute, "running", func(r callRecord) bool { return r.State == "running" })
		callAccepted(t, s, "shop", "slow", "c3", `{"ms":100,"steps":1}`)
		waitRecord(t, s, "shop", "c3", time.Minute, "queued", func(r callRecord) bool { return r.State == "queued" })
		for _, id := range []string{"c3", "c1"} {
			code, body, _ := do(t, http.MethodDelete, s.url("/v1/models/shop/calls/"+id), "", nil)
			require.Equal(t, http.StatusAccepted, code, string(body))
			r := waitRecord(t, s, "shop", id, time.Minute, "cancelled", ended)
			require.Equal(t, "cancelled", r.Error.Code, "%+v", r)
		}
		code, body := call(t, s, "shop", "slow", "c4", `{"ms":600000,"steps":600}`, "?deadline_ms=2000")
		require.Equal(t, http.StatusAccepted, code, string(body))
		r := waitRecord(t, s, "shop", "c4", time.Minute, "past its deadline", ended)
		require.Equal(t, "deadline_exceeded", r.Error.Code, "%+v", r)
		code, _, _ = do(t, http.MethodDelete, s.url("/v1/models/shop/calls/c2"), "", nil)
		require.Equal(t, http.StatusAccepted, code)
		waitRecord(t, s, "shop", "c2", time.Minute, "cancelled", ended)
		// The queued call never ran.
		r, _ = record(t, s, "shop", "c3")
		require.Empty(t, r.Attempts, "%+v", r)
		_, js := s.connect(t)
		for _, id := range []string{"c1", "c2", "c3", "c4"} {
			require.Equal(t, 1, terminals(callMessages(t, js, "shop", id)), id)
		}
	})
	t.Run("a capability no worker has", func(t *testing.T) {
		putFunction(t, s, "shop", "train", `{"kind":"compute","capabilities":["gpu"],"handler":"train"}`)
		callAccepted(t, s, "shop", "train", "g1", `{}`)
		_, js := s.connect(t)
		st, _ := waitNotification(t, js, "shop", "g1") // after the placement grace, 30 s
		requireError(t, st, "unavailable")
		require.True(t, strings.Contains(st.Error.Message, "gpu"), st.Error.Message)
	})
}

// A worker killed with SIGKILL mid-call: its job returns to the queue and
// another worker with the capability finishes it, with one result.
func TestComputeWorkerKilled(t *testing.T) {
	t.Parallel()
	s := startComputeServer(t, 10)
	a := startNodeWorker(t, s, s.natsURL, "node-a", 1)
	putFunction(t, s, "shop", "slow", `{"kind":"compute","capabilities":["node"],"handler":"slow","deadline_ms":300000,
		"params":[{"name":"ms","type":"INTEGER"},{"name":"steps","type":"INTEGER"}]}`)
	callAccepted(t, s, "shop", "slow", "k1", `{"ms":4000,"steps":4}`)
	waitRecord(t, s, "shop", "k1", time.Minute, "running on node-a", func(r callRecord) bool { return r.State == "running" && r.Worker == "node-a" })
	a.kill()
	startNodeWorker(t, s, s.natsURL, "node-b", 1)
	r := waitRecord(t, s, "shop", "k1", 3*time.Minute, "finished by node-b", ended)
	require.Equal(t, "done", r.State, "%+v", r)
	require.Equal(t, "node-b", r.Worker)
	require.GreaterOrEqual(t, r.Attempt, 2)
	resultRows(t, s, "k1")
}

// Two workers share a stream of 200 calls by their slots: every call ends
// once, and both workers take part.
func TestComputeWorkersShareCalls(t *testing.T) {
	t.Parallel()
	s := startComputeServer(t, 100)
	startGoWorker(t, s.natsURL, "go-a", 1)
	startGoWorker(t, s.natsURL, "go-b", 3)
	putFunction(t, s, "shop", "sample", `{"kind":"compute","capabilities":["go"],"handler":"sample",
		"params":[{"name":"table","type":"VARCHAR","required":true},{"name":"n","type":"INTEGER","default":1}]}`)
	const calls = 200
	for i := range calls {
		callAccepted(t, s, "shop", "sample", fmt.Sprintf("s%d", i), `{"table":"orders"}`)
	}
	by := map[string]int{}
	for i := range calls {
		r := waitRecord(t, s, "shop", fmt.Sprintf("s%d", i), 3*time.Minute, "done", ended)
		require.Equal(t, "done", r.State, "%+v", r)
		by[r.Worker]++
	}
	t.Logf("calls by worker: %v", by)
	require.Positive(t, by["go-a"])
	require.Positive(t, by["go-b"])
	require.Equal(t, calls, by["go-a"]+by["go-b"])
	_, js := s.connect(t)
	for i := range calls {
		require.Equal(t, 1, terminals(callMessages(t, js, "shop", fmt.Sprintf("s%d", i))))
	}
}
