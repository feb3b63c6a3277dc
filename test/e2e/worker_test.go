package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
)

// TestServeWorker runs `teatree serve worker` beside `teatree up`: it
// advertises itself in tt_compute, runs a describe job on a version the
// node published (queued by hand, as the dispatcher queues it), and on
// SIGTERM exits cleanly and deletes its heartbeat.
func TestServeWorker(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	createModel(t, s, `{"id":"wk","snapshot":{"interval_ms":100}}`)
	_, js := s.connect(t)
	publish(t, js, "tt.mut.wk.append", "r1", map[string]string{"Tt-Table": "orders", "Content-Type": "text/csv"},
		[]byte("id,amount\n1,9.5\n2,3\n3,4.25\n"))
	st, _ := waitNotification(t, js, "wk", "r1")
	require.Equal(t, "applied", st.Status, "%+v", st)
	var dir string
	require.Eventually(t, func() bool {
		found, _ := filepath.Glob(filepath.Join(s.data, "blobs", "models", "wk", "v*", "manifest.json"))
		sort.Strings(found)
		for _, m := range found {
			body, err := os.ReadFile(m)
			if err == nil && strings.Contains(string(body), `"orders"`) {
				dir = filepath.Dir(m)
			}
		}
		return dir != ""
	}, 60*time.Second, 50*time.Millisecond, "a version of wk with table orders")

	w := newProc(t, "teatree serve worker", binary,
		[]string{"serve", "worker", "--nats", s.natsURL(), "--id", "w-e2e", "--slots", "2"}, readyTeatree("teatree serving [worker]", ""))
	w.start()
	ctx := context.Background()
	compute, err := js.KeyValue(ctx, "tt_compute")
	require.NoError(t, err)
	ent, err := compute.Get(ctx, "w-e2e")
	require.NoError(t, err)
	var hb calls.Heartbeat
	require.NoError(t, json.Unmarshal(ent.Value(), &hb))
	require.Equal(t, []string{"describe", "sample", "sql_to_table"}, hb.Handlers)
	require.Equal(t, []string{"go"}, hb.Capabilities)
	require.Equal(t, 2, hb.Slots)

	result := filepath.Join(t.TempDir(), "calls", "wk", "c1", "1")
	job := calls.Job{CallID: "c1", Model: "wk", Function: "describe", Handler: "describe", Args: map[string]any{"table": "orders"},
		MaxAttempts: 3, Deadline: time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano),
		Input:   calls.Version{Model: "wk", DuckDB: calls.Object{URL: "file://" + filepath.Join(dir, "model.duckdb")}},
		Results: []calls.Result{{Attempt: 1, URL: "file://" + result}}}
	body, err := json.Marshal(job)
	require.NoError(t, err)
	publish(t, js, "tt.call.describe@go.wk", "wk.c1", nil, body)

	evt, err := js.Stream(ctx, "TT_EVT")
	require.NoError(t, err)
	var done calls.Event
	require.Eventually(t, func() bool {
		msg, err := evt.GetLastMsgForSubject(ctx, "tt.evt.wk.call")
		if err != nil || msg.Header.Get("Nats-Msg-Id") != "wk.c1.1.done" {
			return false
		}
		return json.Unmarshal(msg.Data, &done) == nil
	}, 60*time.Second, 50*time.Millisecond, "the worker reports the call done")
	require.Equal(t, "w-e2e", done.Worker)
	require.EqualValues(t, 2, done.Rows, "one row a column: id, amount")
	info, err := os.Stat(result)
	require.NoError(t, err)
	require.Equal(t, info.Size(), done.Bytes)

	w.stopCleanly()
	_, err = compute.Get(ctx, "w-e2e")
	require.True(t, errors.Is(err, jetstream.ErrKeyNotFound), "a stopped worker's heartbeat is deleted: %v", err)
}
