// Package workertest runs compute workers in tests: an embedded NATS
// server with teatree's streams, a blob directory with a version of model
// sales built by hand, jobs queued as the dispatcher queues them, and the
// events workers report.
package workertest

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

// Names are the default names, which the environment uses.
var Names = subject.Default()

// Env is a NATS server with teatree's streams, the tt_compute bucket and
// a blob directory holding version 1 of model sales.
type Env struct {
	*natstest.Env
	Compute jetstream.KeyValue
	Blobs   string
	Version calls.Version
}

// New starts an environment for t.
func New(t testing.TB) *Env {
	t.Helper()
	e := &Env{Env: natstest.Start(t), Blobs: t.TempDir()}
	var err error
	e.Compute, err = e.JS.KeyValue(context.Background(), Names.ComputeBucket())
	require.NoError(t, err)
	e.Version = BuildVersion(t, e.Blobs, "sales", 1)
	return e
}

// BuildVersion writes version v of model as a db-manager would: its
// model.duckdb with table orders (ids 1 to 5) and orders.parquet.
func BuildVersion(t testing.TB, blobs, model string, v uint64) calls.Version {
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

// Job is a job of handler for call id, as the dispatcher queues it.
func (e *Env) Job(id, handler string, args map[string]any, maxAttempts int) calls.Job {
	j := calls.Job{CallID: id, Model: "sales", Function: handler, Handler: handler, Args: args, MaxAttempts: maxAttempts,
		Deadline: time.Now().Add(time.Minute).UTC().Format(time.RFC3339Nano), QueuedAt: time.Now().UTC().Format(time.RFC3339Nano),
		Input: e.Version, PageRows: calls.DefaultPageRows}
	for a := 1; a <= maxAttempts; a++ {
		key := fmt.Sprintf("calls/sales/%s/%d", id, a)
		j.Results = append(j.Results, calls.Result{Attempt: a, URL: "file://" + filepath.Join(e.Blobs, key), Key: key})
	}
	return j
}

// Queue publishes job on tt.call.<handler>@go.sales.
func (e *Env) Queue(t testing.TB, job calls.Job) {
	t.Helper()
	body, err := json.Marshal(job)
	require.NoError(t, err)
	msg := &nats.Msg{Subject: Names.Call(job.Handler+"@go", job.Model), Data: body, Header: nats.Header{}}
	msg.Header.Set(subject.HeaderMsgID, job.Model+"."+job.CallID)
	_, err = e.JS.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

// Start runs a worker until the test ends, and waits until it is ready.
func (e *Env) Start(t testing.TB, cfg worker.Config) *worker.Worker {
	t.Helper()
	w, _ := e.StartStoppable(t, cfg)
	return w
}

// StartStoppable is Start, and a stop that returns once Run has.
func (e *Env) StartStoppable(t testing.TB, cfg worker.Config) (*worker.Worker, func()) {
	t.Helper()
	if cfg.Capabilities == nil {
		cfg.Capabilities = []string{"go"}
	}
	if cfg.TempDir == "" {
		cfg.TempDir = t.TempDir()
	}
	w, err := worker.New(cfg, worker.Deps{JS: e.JS, Compute: e.Compute})
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

// Event is one message of tt.evt.sales.call and its message id.
type Event struct {
	ID string
	calls.Event
}

// Events collects every event of the calls of model sales.
type Events struct {
	mu  sync.Mutex
	all []Event
}

// Watch collects events from now until the test ends.
func (e *Env) Watch(t testing.TB) *Events {
	t.Helper()
	evs := &Events{}
	c, err := e.JS.OrderedConsumer(context.Background(), Names.EvtStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{Names.Evt("sales", subject.EventCall)}})
	require.NoError(t, err)
	cc, err := c.Consume(func(m jetstream.Msg) {
		var ev calls.Event
		require.NoError(t, json.Unmarshal(m.Data(), &ev))
		evs.mu.Lock()
		evs.all = append(evs.all, Event{ID: m.Headers().Get(subject.HeaderMsgID), Event: ev})
		evs.mu.Unlock()
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	return evs
}

// Of are the events of call id so far.
func (evs *Events) Of(id string) []Event {
	evs.mu.Lock()
	defer evs.mu.Unlock()
	var out []Event
	for _, ev := range evs.all {
		if ev.CallID == id {
			out = append(out, ev)
		}
	}
	return out
}

// WaitFor waits for the event of call id with message id msgID.
func (evs *Events) WaitFor(t testing.TB, id, msgID string) Event {
	t.Helper()
	var found Event
	require.Eventually(t, func() bool {
		for _, ev := range evs.Of(id) {
			if ev.ID == msgID {
				found = ev
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "event %s; have %+v", msgID, evs.Of(id))
	return found
}

// ReadArrow reads the Arrow stream at path: its rows and column Names.
func ReadArrow(t testing.TB, path string) (rows int64, cols []string) {
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
