package bench

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/worker"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/worker/builtin"
)

// noop is the trivial compute function of the calls scenario: one JSON
// row, whatever the input.
func noop(context.Context, *worker.Input) (worker.Output, error) {
	return worker.JSON([]map[string]any{{"ok": true}}), nil
}

// startWorker runs a Go worker with handlers in this process, against t's
// NATS server, until the returned stop is called.
func (r *runner) startWorker(ctx context.Context, t *teatree, slots int, handlers map[string]worker.Handler) (func(), error) {
	kv, err := t.js.KeyValue(ctx, t.names.ComputeBucket())
	if err != nil {
		return nil, err
	}
	w, err := worker.New(worker.Config{Names: t.names, ID: "bench", Capabilities: []string{"go"}, Slots: slots, Handlers: handlers},
		worker.Deps{JS: t.js, Compute: kv, Log: r.log.With("service", "worker")})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("worker: %w", err)
	case <-time.After(time.Minute):
		cancel()
		return nil, fmt.Errorf("worker not ready within a minute")
	}
	return func() { cancel(); <-done }, nil
}

// callEnds counts the calls of model that ended (a last result page or a
// failed status), by call id.
type callEnds struct {
	mu     sync.Mutex
	ended  map[string]int
	failed atomic.Int64
	all    chan struct{}
	want   int
}

func (t *teatree) followCalls(model string, want int) (*callEnds, *nats.Subscription, error) {
	e := &callEnds{ended: map[string]int{}, all: make(chan struct{}), want: want}
	sub, err := t.nc.Subscribe(t.names.NtfModel(model), func(m *nats.Msg) {
		status := m.Header.Get(subject.HeaderStatus)
		last := status == subject.StatusResult && m.Header.Get(subject.HeaderPage) == m.Header.Get(subject.HeaderPages)
		if !last && status != subject.StatusFailed {
			return
		}
		if status == subject.StatusFailed {
			e.failed.Add(1)
		}
		e.mu.Lock()
		defer e.mu.Unlock()
		id := m.Header.Get(subject.HeaderRequestID)
		e.ended[id]++
		if len(e.ended) == e.want && e.ended[id] == 1 {
			close(e.all)
		}
	})
	return e, sub, err
}

func (e *callEnds) wait(timeout time.Duration) error {
	select {
	case <-e.all:
		if n := e.failed.Load(); n > 0 {
			return fmt.Errorf("%d calls failed", n)
		}
		return nil
	case <-time.After(timeout):
		e.mu.Lock()
		defer e.mu.Unlock()
		return fmt.Errorf("%d of %d calls ended within %v", len(e.ended), e.want, timeout)
	}
}

// notifications counts each call's terminal notifications.
func (e *callEnds) notifications() *Notifications {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := &Notifications{Requests: e.want}
	for _, c := range e.ended {
		n.Notified++
		n.Duplicates += c - 1
	}
	return n
}

// publishCall publishes a compute call on tt.call.fn.<model>.
func (t *teatree) publishCall(ctx context.Context, model, id string, c calls.Call) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	m := nats.NewMsg(t.names.Call(subject.CallIntake, model))
	m.Data = b
	m.Header.Set(subject.HeaderMsgID, subject.MsgID(model, id))
	_, err = t.js.PublishMsg(ctx, m)
	return err
}

// computeCalls measures calls of a trivial compute function through a Go
// worker (queued by the dispatcher, pulled, run on its version, the
// result stored and notified) beside a raw NATS request/reply to the same
// function.
func (r *runner) computeCalls(ctx context.Context) error {
	t, err := r.startTeatree(ctx, "compute-calls", stackOptions{syncAlways: true})
	if err != nil {
		return err
	}
	defer t.stop()
	const model, slots, clients = "fn", 4, 8
	if _, err := t.createTable(ctx, &teatreev1.ModelSpec{Id: model}, 10, ""); err != nil {
		return err
	}
	if _, err := t.api.PutFunction(ctx, model, "noop", []byte(`{"kind":"compute","capabilities":["go"],"handler":"noop"}`)); err != nil {
		return err
	}
	stop, err := r.startWorker(ctx, t, slots, map[string]worker.Handler{"noop": noop})
	if err != nil {
		return err
	}
	defer stop()
	n := r.sz.computeCalls
	ends, sub, err := t.followCalls(model, n)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	r.stepf("  teatree: %d calls of a trivial function, %d publishers, a worker of %d slots", n, clients, slots)
	var elapsed time.Duration
	err = r.profile("compute-calls", func() error {
		start := time.Now()
		if err := parallel(ctx, clients, n, func(i int) error {
			return t.publishCall(ctx, model, fmt.Sprintf("c%d", i), calls.Call{Function: "noop"})
		}); err != nil {
			return err
		}
		err := ends.wait(r.sz.maxPhase)
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		return err
	}
	r.stepf("  baseline: %d NATS requests to the same function, %d clients, %d responders", n, clients, slots)
	base, err := rawCalls(ctx, t.nc, n, clients, slots)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	r.add(Result{Scenario: "compute calls", Variant: fmt.Sprintf("trivial function, Go worker of %d slots", slots),
		Unit: "calls/s", HigherIsBetter: true, Teatree: float64(n) / elapsed.Seconds(), Baseline: float64(n) / base.Seconds(),
		BaselineName: "raw NATS request/reply", Count: n, Notifications: ends.notifications(),
		Note: "each teatree call is checked and queued by the dispatcher, runs on its version's DuckDB in the worker, and its result is written to the blob store and notified"}, nil)
	return nil
}

// rawCalls runs the trivial function behind a plain NATS queue
// subscription and times n requests to it from k clients.
func rawCalls(ctx context.Context, nc *nats.Conn, n, k, responders int) (time.Duration, error) {
	const subj = "bench.noop"
	for range responders {
		sub, err := nc.QueueSubscribe(subj, "noop", func(m *nats.Msg) {
			out, err := noop(ctx, nil)
			if err != nil {
				return
			}
			b, _ := json.Marshal(out.Rows)
			_ = m.Respond(b)
		})
		if err != nil {
			return 0, err
		}
		defer sub.Unsubscribe()
	}
	start := time.Now()
	err := parallel(ctx, k, n, func(int) error {
		_, err := nc.RequestWithContext(ctx, subj, []byte(`{"function":"noop","args":{}}`))
		return err
	})
	return time.Since(start), err
}

// computeDescribe measures `describe` over a version of a million rows,
// called as a compute function, beside the same Go code run directly on
// the version's Parquet file.
func (r *runner) computeDescribe(ctx context.Context) error {
	t, err := r.startTeatree(ctx, "compute-describe", stackOptions{syncAlways: true})
	if err != nil {
		return err
	}
	defer t.stop()
	const model = "described"
	rows := r.sz.describeRows
	r.stepf("  generating %d rows", rows)
	v, err := t.createTable(ctx, &teatreev1.ModelSpec{Id: model}, rows, "")
	if err != nil {
		return err
	}
	if _, err := t.api.PutFunction(ctx, model, "describe", []byte(`{"kind":"compute","capabilities":["go"],"handler":"describe",
		"params":[{"name":"table","type":"VARCHAR","required":true}]}`)); err != nil {
		return err
	}
	stop, err := r.startWorker(ctx, t, 1, builtin.Handlers())
	if err != nil {
		return err
	}
	defer stop()
	ends, sub, err := t.followCalls(model, 1)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	r.stepf("  teatree: describe of %d rows as a compute call", rows)
	var elapsed time.Duration
	err = r.profile("compute-describe", func() error {
		start := time.Now()
		if err := t.publishCall(ctx, model, "d1", calls.Call{Function: "describe", Args: map[string]any{"table": "big"}}); err != nil {
			return err
		}
		err := ends.wait(r.sz.maxPhase)
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		return err
	}
	r.stepf("  baseline: the same Go code on the version's Parquet file")
	base, err := describeDirect(ctx, t.blobPath(model, v, "big.parquet"))
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	r.add(Result{Scenario: "compute describe", Variant: fmt.Sprintf("%d rows, 3 columns", rows),
		Unit: "s", Teatree: elapsed.Seconds(), Baseline: base.Seconds(), BaselineName: "builtin.Describe on the Parquet file",
		Count: 1, Notifications: ends.notifications()}, nil)
	return nil
}

// describeDirect times builtin.Describe on a view over a Parquet file in a
// DuckDB of this process: no NATS, no dispatcher, no worker.
func describeDirect(ctx context.Context, parquet string) (time.Duration, error) {
	init := []string{"ATTACH ':memory:' AS " + worker.InputSchema, "USE " + worker.InputSchema,
		fmt.Sprintf("CREATE OR REPLACE VIEW big AS SELECT * FROM read_parquet('%s')", parquet)}
	conn, err := duckdb.NewConnector("", func(ex driver.ExecerContext) error {
		for _, q := range init[:2] {
			if _, err := ex.ExecContext(ctx, q, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	if _, err := db.ExecContext(ctx, init[2]); err != nil {
		return 0, err
	}
	start := time.Now()
	out, err := builtin.Describe(ctx, worker.Direct(db, map[string]any{"table": "big"}))
	if err != nil {
		return 0, err
	}
	for out.Arrow.Next() {
	}
	out.Release()
	return time.Since(start), nil
}
