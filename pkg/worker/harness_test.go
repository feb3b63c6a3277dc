package worker_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/worker"
)

var names = subject.Default()

// env is a NATS server with teatree's streams, the tt_compute bucket and
// a blob directory holding one version of model sales.
type env struct {
	*natstest.Env
	compute jetstream.KeyValue
	blobs   string
	version calls.Version
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{Env: natstest.Start(t), blobs: t.TempDir()}
	var err error
	e.compute, err = e.JS.KeyValue(context.Background(), names.ComputeBucket())
	require.NoError(t, err)
	e.version = buildVersion(t, e.blobs, "sales", 1)
	return e
}

// buildVersion writes version v of model as a db-manager would: its
// model.duckdb with table orders (ids 1 to 5) and orders.parquet.
func buildVersion(t *testing.T, blobs, model string, v uint64) calls.Version {
	t.Helper()
	dir := filepath.Join(blobs, "models", model, fmt.Sprintf("v%d", v))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	dbPath := filepath.Join(dir, "model.duckdb")
	pqPath := filepath.Join(dir, "orders.parquet")
	db, err := sql.Open("duckdb", dbPath)
	require.NoError(t, err)
	for _, q := range []string{
		`CREATE TABLE orders (id INTEGER, item VARCHAR, amount DOUBLE)`,
		`INSERT INTO orders SELECT i, 'item-' || i, i * 1.5 FROM range(1, 6) t(i)`,
		fmt.Sprintf(`COPY orders TO '%s' (FORMAT parquet)`, pqPath),
	} {
		_, err := db.Exec(q)
		require.NoError(t, err, q)
	}
	require.NoError(t, db.Close())
	key := fmt.Sprintf("models/%s/v%d/", model, v)
	return calls.Version{Model: model, Version: v, AppliedSeq: 5,
		DuckDB: calls.Object{URL: "file://" + dbPath, Key: key + "model.duckdb"},
		Tables: []calls.Table{{Name: "orders", Rows: 5, Parquet: calls.Object{URL: "file://" + pqPath, Key: key + "orders.parquet"}}}}
}

// job is a job of handler for call id, as the dispatcher queues it.
func (e *env) job(id, handler string, args map[string]any, maxAttempts int) calls.Job {
	j := calls.Job{CallID: id, Model: "sales", Function: handler, Handler: handler, Args: args, MaxAttempts: maxAttempts,
		Deadline: time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano), QueuedAt: time.Now().UTC().Format(time.RFC3339Nano),
		Input: e.version, PageRows: calls.DefaultPageRows}
	for a := 1; a <= maxAttempts; a++ {
		key := fmt.Sprintf("calls/sales/%s/%d", id, a)
		j.Results = append(j.Results, calls.Result{Attempt: a, URL: "file://" + filepath.Join(e.blobs, key), Key: key})
	}
	return j
}

// queue publishes job on tt.call.<handler>@go.sales.
func (e *env) queue(t *testing.T, job calls.Job) {
	t.Helper()
	body, err := json.Marshal(job)
	require.NoError(t, err)
	msg := &nats.Msg{Subject: names.Call(job.Handler+"@go", job.Model), Data: body, Header: nats.Header{}}
	msg.Header.Set(subject.HeaderMsgID, job.Model+"."+job.CallID)
	_, err = e.JS.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

// start runs a worker until the test ends, and waits until it is ready.
func (e *env) start(t *testing.T, cfg worker.Config) *worker.Worker {
	t.Helper()
	w, _ := e.startStoppable(t, cfg)
	return w
}

// startStoppable is start, and a stop that returns once Run has.
func (e *env) startStoppable(t *testing.T, cfg worker.Config) (*worker.Worker, func()) {
	t.Helper()
	if cfg.Capabilities == nil {
		cfg.Capabilities = []string{"go"}
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	w, err := worker.New(cfg, worker.Deps{JS: e.JS, Compute: e.compute})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- w.Run(ctx, func() { close(ready) }) }()
	stop := sync.OnceFunc(func() {
		cancel()
		require.NoError(t, <-done)
	})
	t.Cleanup(stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("worker not ready in 30 s")
	}
	return w, stop
}

// event is one message of tt.evt.sales.call.
type event struct {
	id string
	calls.Event
}

// events collects every event of model's calls.
type events struct {
	mu  sync.Mutex
	all []event
}

func (e *env) watch(t *testing.T) *events {
	t.Helper()
	evs := &events{}
	c, err := e.JS.OrderedConsumer(context.Background(), names.EvtStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{names.Evt("sales", subject.EventCall)}})
	require.NoError(t, err)
	cc, err := c.Consume(func(m jetstream.Msg) {
		var ev calls.Event
		require.NoError(t, json.Unmarshal(m.Data(), &ev))
		evs.mu.Lock()
		evs.all = append(evs.all, event{id: m.Headers().Get(subject.HeaderMsgID), Event: ev})
		evs.mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	return evs
}

// of are the events of call id so far.
func (evs *events) of(id string) []event {
	evs.mu.Lock()
	defer evs.mu.Unlock()
	var out []event
	for _, ev := range evs.all {
		if ev.CallID == id {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor waits for an event of call id with the given message id.
func (evs *events) waitFor(t *testing.T, id, msgID string) event {
	t.Helper()
	var found event
	require.Eventually(t, func() bool {
		for _, ev := range evs.of(id) {
			if ev.id == msgID {
				found = ev
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "event %s; have %+v", msgID, evs.of(id))
	return found
}

// readArrow reads the Arrow stream at path: its rows and column names.
func readArrow(t *testing.T, path string) (rows int64, cols []string) {
	t.Helper()
	body, err := os.ReadFile(path)
	require.NoError(t, err)
	rd, err := ipc.NewReader(bytes.NewReader(body))
	require.NoError(t, err)
	defer rd.Release()
	for _, f := range rd.Schema().Fields() {
		cols = append(cols, f.Name)
	}
	for rd.Next() {
		rows += rd.RecordBatch().NumRows()
	}
	require.NoError(t, rd.Err())
	return rows, cols
}
