package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// nodeWorkerRig is examples/node-worker/worker.mjs as a process beside a
// nats-server with teatree's streams and buckets, and a version of model
// "sales" written by hand in a blob directory. The test plays the
// dispatcher (it queues jobs) and the notifier (it reads TT_EVT).
type nodeWorkerRig struct {
	t      *testing.T
	names  subject.Names
	nc     *nats.Conn
	js     jetstream.JetStream
	blobs  string
	input  calls.Version
	worker *proc

	mu     sync.Mutex
	events map[string]calls.Event // by Nats-Msg-Id
}

const nodeWorkerID = "nw-1"

func startNodeWorkerRig(t *testing.T) *nodeWorkerRig {
	t.Helper()
	dir, err := filepath.Abs("../../examples/node-worker")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@nats-io", "kv"))
	require.NoError(t, err, "the worker's Node packages are missing: run `make test-e2e` (it runs npm ci in examples/node-worker)")

	n := startNATS(t)
	nc, js := connectNATS(t, n.url())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, natsboot.Setup(ctx, js, natsboot.Config{}))

	r := &nodeWorkerRig{t: t, names: subject.Default(), nc: nc, js: js, blobs: t.TempDir(), events: map[string]calls.Event{}}
	r.input = r.writeVersion("sales", 1)
	r.readEvents(ctx, "sales")

	r.worker = newProc(t, "node worker", "node",
		[]string{filepath.Join(dir, "worker.mjs"), "--nats", n.url(), "--id", nodeWorkerID, "--slots", "2", "--capabilities", "node"},
		func(p *proc) bool { return strings.Count(p.logs.String(), ": ready:") >= p.starts })
	r.worker.start()
	return r
}

// writeVersion writes models/<model>/v<version>/model.duckdb with a table
// orders of five rows, as a db-manager would publish it.
func (r *nodeWorkerRig) writeVersion(model string, version uint64) calls.Version {
	key := "models/" + model + "/v" + strconv.FormatUint(version, 10) + "/model.duckdb"
	path := filepath.Join(r.blobs, filepath.FromSlash(key))
	require.NoError(r.t, os.MkdirAll(filepath.Dir(path), 0o755))
	db, err := sql.Open("duckdb", path)
	require.NoError(r.t, err)
	_, err = db.Exec(`CREATE TABLE orders (id INTEGER, item VARCHAR, amount DOUBLE);
		INSERT INTO orders VALUES (1, 'apple', 3.5), (2, 'pear', 9), (3, 'fig', 1.25), (4, 'plum', 7), (5, 'kiwi', 2)`)
	require.NoError(r.t, err)
	require.NoError(r.t, db.Close())
	return calls.Version{Model: model, Version: version, AppliedSeq: 5,
		DuckDB: calls.Object{URL: fileURL(path), Key: key}}
}

func fileURL(path string) string {
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(path)}).String()
}

// readEvents collects every event of model's calls from TT_EVT.
func (r *nodeWorkerRig) readEvents(ctx context.Context, model string) {
	cons, err := r.js.OrderedConsumer(ctx, r.names.EvtStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{r.names.Evt(model, "call")}})
	require.NoError(r.t, err)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		var ev calls.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			r.t.Errorf("event %s is not JSON: %v", msg.Data(), err)
			return
		}
		r.mu.Lock()
		r.events[msg.Headers().Get(subject.HeaderMsgID)] = ev
		r.mu.Unlock()
	})
	require.NoError(r.t, err)
	r.t.Cleanup(cc.Stop)
}

// queue publishes a job of handler as the dispatcher would, and returns
// it.
func (r *nodeWorkerRig) queue(t *testing.T, callID, handler string, args map[string]any, maxAttempts int, deadline time.Time) calls.Job {
	t.Helper()
	job := r.job(callID, handler, args, maxAttempts, deadline)
	r.publish(t, job)
	return job
}

// job is a job of handler on the rig's version. Every attempt writes its
// result under calls/sales/<call id>/ in the blob directory.
func (r *nodeWorkerRig) job(callID, handler string, args map[string]any, maxAttempts int, deadline time.Time) calls.Job {
	now := time.Now().UTC()
	job := calls.Job{CallID: callID, Model: "sales", Function: handler, Handler: handler, Args: args,
		MaxAttempts: maxAttempts, Deadline: deadline.UTC().Format(time.RFC3339Nano), QueuedAt: now.Format(time.RFC3339Nano),
		Input: r.input, PageRows: calls.DefaultPageRows}
	for a := 1; a <= maxAttempts; a++ {
		key := "calls/sales/" + callID + "/" + strconv.Itoa(a)
		job.Results = append(job.Results, calls.Result{Attempt: a, Key: key, URL: fileURL(filepath.Join(r.blobs, filepath.FromSlash(key)))})
	}
	return job
}

// publish queues job on its route, tt.call.<handler>@node.sales.
func (r *nodeWorkerRig) publish(t *testing.T, job calls.Job) {
	t.Helper()
	body, err := json.Marshal(job)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	route := function.Route(job.Handler, []string{"node"})
	_, err = r.js.Publish(ctx, r.names.Call(route, job.Model), body, jetstream.WithMsgID(job.Model+"."+job.CallID))
	require.NoError(t, err)
}

// event waits for the event with this Nats-Msg-Id.
func (r *nodeWorkerRig) event(t *testing.T, msgID string) calls.Event {
	t.Helper()
	var ev calls.Event
	if !assert.Eventually(t, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		var ok bool
		ev, ok = r.events[msgID]
		return ok
	}, 60*time.Second, 20*time.Millisecond) {
		require.FailNow(t, "no event "+msgID, "have %v", r.eventIDs())
	}
	return ev
}

func (r *nodeWorkerRig) eventIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	ids := make([]string, 0, len(r.events))
	for id := range r.events {
		ids = append(ids, id)
	}
	return ids
}

func (r *nodeWorkerRig) hasEvent(msgID string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.events[msgID]
	return ok
}

// result reads the result an attempt of job wrote.
func (r *nodeWorkerRig) result(t *testing.T, job calls.Job, attempt int) []map[string]any {
	t.Helper()
	body, err := os.ReadFile(filepath.Join(r.blobs, filepath.FromSlash(job.Results[attempt-1].Key)))
	require.NoError(t, err)
	var rows []map[string]any
	require.NoError(t, json.Unmarshal(body, &rows), string(body))
	return rows
}

// TestNodeWorker runs the Node.js worker of examples/node-worker against
// the contract's "Workers" section: its heartbeat and consumers, a job's
// events and result, a retry, progress, cancel, a passed deadline and a
// clean stop.
func TestNodeWorker(t *testing.T) {
	t.Parallel()
	r := startNodeWorkerRig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	workers, err := r.js.KeyValue(ctx, r.names.ComputeBucket())
	require.NoError(t, err)

	t.Run("advertises itself and binds its routes", func(t *testing.T) {
		entry, err := workers.Get(ctx, nodeWorkerID)
		require.NoError(t, err)
		var hb calls.Heartbeat
		require.NoError(t, json.Unmarshal(entry.Value(), &hb))
		require.Equal(t, nodeWorkerID, hb.ID)
		require.Equal(t, []string{"node"}, hb.Capabilities)
		require.ElementsMatch(t, []string{"row_count", "top", "slow", "fail"}, hb.Handlers)
		require.Equal(t, 2, hb.Slots)
		require.Equal(t, "node", hb.Lang)

		route := function.Route("row_count", []string{"node"})
		cons, err := r.js.Consumer(ctx, r.names.CallStream(), calls.Consumer(route))
		require.NoError(t, err)
		cfg := cons.CachedInfo().Config
		require.Equal(t, r.names.CallRoute(route), cfg.FilterSubject)
		require.Equal(t, jetstream.AckExplicitPolicy, cfg.AckPolicy)
		require.Equal(t, 30*time.Second, cfg.AckWait)
		require.Equal(t, -1, cfg.MaxDeliver)
	})

	t.Run("row_count and top", func(t *testing.T) {
		job := r.queue(t, "c1", "row_count", map[string]any{"table": "orders"}, 3, time.Now().Add(time.Minute))
		started := r.event(t, "sales.c1.1.started")
		require.Equal(t, calls.Event{Event: calls.EventStarted, Model: "sales", CallID: "c1", Attempt: 1, Worker: nodeWorkerID}, started)
		done := r.event(t, "sales.c1.1.done")
		require.Equal(t, calls.EventDone, done.Event)
		require.Equal(t, "application/json", done.ContentType)
		require.EqualValues(t, 1, done.Rows)
		require.Equal(t, []map[string]any{{"table": "orders", "rows": float64(5)}}, r.result(t, job, 1))
		body, err := os.ReadFile(filepath.Join(r.blobs, filepath.FromSlash(job.Results[0].Key)))
		require.NoError(t, err)
		require.EqualValues(t, len(body), done.Bytes)

		job = r.queue(t, "t1", "top", map[string]any{"table": "orders", "column": "amount", "n": 2}, 3, time.Now().Add(time.Minute))
		r.event(t, "sales.t1.1.done")
		rows := r.result(t, job, 1)
		require.Len(t, rows, 2)
		require.Equal(t, []any{"pear", "plum"}, []any{rows[0]["item"], rows[1]["item"]})
	})

	t.Run("inputs and results over HTTP", func(t *testing.T) {
		// A stand-in for pre-signed S3 URLs: GET the version's file, PUT
		// the result.
		var mu sync.Mutex
		put := map[string][]byte{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			switch req.Method {
			case http.MethodGet:
				http.ServeFile(w, req, filepath.Join(r.blobs, filepath.FromSlash(strings.TrimPrefix(req.URL.Path, "/"))))
			case http.MethodPut:
				body, err := io.ReadAll(req.Body)
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				mu.Lock()
				put[req.URL.Path] = body
				mu.Unlock()
			default:
				http.Error(w, "method", http.StatusMethodNotAllowed)
			}
		}))
		t.Cleanup(srv.Close)
		job := r.job("h1", "row_count", map[string]any{"table": "orders"}, 3, time.Now().Add(time.Minute))
		job.Input.DuckDB.URL = srv.URL + "/" + job.Input.DuckDB.Key
		for i := range job.Results {
			job.Results[i].URL = srv.URL + "/" + job.Results[i].Key
		}
		r.publish(t, job)
		r.event(t, "sales.h1.1.done")
		mu.Lock()
		defer mu.Unlock()
		require.JSONEq(t, `[{"table":"orders","rows":5}]`, string(put["/calls/sales/h1/1"]))
	})

	t.Run("a bad argument fails for good", func(t *testing.T) {
		r.queue(t, "b1", "row_count", map[string]any{"table": "orders; DROP TABLE orders"}, 3, time.Now().Add(time.Minute))
		failed := r.event(t, "sales.b1.1.failed")
		require.True(t, failed.Final)
		require.Equal(t, "invalid_argument", failed.Error.Code)

		r.queue(t, "b2", "top", map[string]any{"table": "orders", "column": "colour", "n": 1}, 3, time.Now().Add(time.Minute))
		failed = r.event(t, "sales.b2.1.failed")
		require.True(t, failed.Final, "a column the version lacks is not retried")
		require.Equal(t, "invalid_argument", failed.Error.Code)
		require.Contains(t, failed.Error.Message, "colour")
	})

	t.Run("a failed attempt is retried", func(t *testing.T) {
		job := r.queue(t, "r1", "fail", map[string]any{"times": 1}, 3, time.Now().Add(time.Minute))
		failed := r.event(t, "sales.r1.1.failed")
		require.False(t, failed.Final)
		require.Equal(t, "internal", failed.Error.Code)
		require.Equal(t, nodeWorkerID, r.event(t, "sales.r1.2.started").Worker)
		r.event(t, "sales.r1.2.done")
		require.Equal(t, []map[string]any{{"attempt": float64(2)}}, r.result(t, job, 2))

		r.queue(t, "r2", "fail", map[string]any{"times": 5}, 2, time.Now().Add(time.Minute))
		require.False(t, r.event(t, "sales.r2.1.failed").Final)
		last := r.event(t, "sales.r2.2.failed")
		require.True(t, last.Final)
		require.Equal(t, "internal", last.Error.Code)
	})

	t.Run("progress and cancel", func(t *testing.T) {
		r.queue(t, "s1", "slow", map[string]any{"steps": 100, "ms": 1200}, 3, time.Now().Add(10*time.Minute))
		r.event(t, "sales.s1.1.started")
		first := r.event(t, "sales.s1.1.progress.1")
		require.Equal(t, calls.EventProgress, first.Event)
		require.InDelta(t, 0.01, first.Fraction, 1e-9)
		require.Equal(t, "1 of 100 steps", first.Message)
		require.InDelta(t, 0.02, r.event(t, "sales.s1.1.progress.2").Fraction, 1e-9)

		require.Eventually(t, func() bool { // at the next heartbeat, within 5 s
			entry, err := workers.Get(ctx, nodeWorkerID)
			var hb calls.Heartbeat
			return err == nil && json.Unmarshal(entry.Value(), &hb) == nil && slices.Contains(hb.Running, "sales.s1")
		}, 30*time.Second, 50*time.Millisecond, "the heartbeat lists the running call")

		require.NoError(t, r.nc.Publish(r.names.WorkCancel("sales", "s1"), nil))
		failed := r.event(t, "sales.s1.1.failed")
		require.True(t, failed.Final)
		require.Equal(t, "cancelled", failed.Error.Code)
		require.False(t, r.hasEvent("sales.s1.1.done"))
	})

	t.Run("a passed deadline fails without running", func(t *testing.T) {
		r.queue(t, "d1", "row_count", map[string]any{"table": "orders"}, 3, time.Now().Add(-time.Second))
		failed := r.event(t, "sales.d1.1.failed")
		require.True(t, failed.Final)
		require.Equal(t, "deadline_exceeded", failed.Error.Code)
		require.False(t, r.hasEvent("sales.d1.1.started"))
	})

	t.Run("a clean stop finishes its jobs, gives back the ones too slow, and deletes the heartbeat", func(t *testing.T) {
		r.queue(t, "e1", "slow", map[string]any{"steps": 2, "ms": 1500}, 3, time.Now().Add(time.Minute))
		r.queue(t, "e2", "slow", map[string]any{"steps": 1000, "ms": 1000}, 3, time.Now().Add(time.Hour))
		r.event(t, "sales.e1.1.started")
		r.event(t, "sales.e2.1.started")
		r.worker.stopCleanly()
		require.Equal(t, calls.EventDone, r.event(t, "sales.e1.1.done").Event, "a stop lets a running job end")
		gaveUp := r.event(t, "sales.e2.1.failed")
		require.Equal(t, "unavailable", gaveUp.Error.Code)
		require.False(t, gaveUp.Final, "a job the stop cut short goes back to the queue")
		stream, err := r.js.Stream(ctx, r.names.CallStream())
		require.NoError(t, err)
		jobs := r.names.Call(function.Route("slow", []string{"node"}), "sales")
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(jobs))
		require.NoError(t, err)
		require.EqualValues(t, 1, info.State.Subjects[jobs], "the cut-short job is still queued")
		_, err = workers.Get(ctx, nodeWorkerID)
		require.ErrorIs(t, err, jetstream.ErrKeyNotFound)
	})
}
