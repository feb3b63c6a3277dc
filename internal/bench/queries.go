package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

const smallAggregate = "select count(*) as n, sum(v) as s, min(v) as lo, max(v) as hi from big"

// clientLoop runs f from c goroutines for d (and at most 1M calls),
// timing each call.
func clientLoop(ctx context.Context, c int, d time.Duration, f func() error) (loadResult, error) {
	var mu sync.Mutex
	var lats []time.Duration
	var first error
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for n := 0; n < 1_000_000/c && time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				at := time.Now()
				err := f()
				mu.Lock()
				if err != nil {
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
				lats = append(lats, time.Since(at))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return loadResult{done: len(lats), elapsed: time.Since(start), lats: lats}, first
}

// directQueries runs a small aggregate over 1M rows through tt.query at 1,
// 4 and 16 concurrent clients, and the same query on the same version file
// in-process through duckdb-go.
func (r *runner) directQueries(ctx context.Context) error {
	t, err := r.startTeatree(ctx, "direct-queries", stackOptions{})
	if err != nil {
		return err
	}
	defer t.stop()
	version, err := t.createTable(ctx, &teatreev1.ModelSpec{Id: "q"}, 1_000_000, "")
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"sql": smallAggregate, "format": "json"})
	query := func() error {
		msg, err := t.nc.Request(t.names.Query("q"), body, 30*time.Second)
		if err != nil {
			return err
		}
		if msg.Header.Get(subject.HeaderStatus) == subject.StatusFailed {
			return fmt.Errorf("query failed: %s", msg.Data)
		}
		return nil
	}
	db, err := sql.Open("duckdb", t.blobPath("q", version, "model.duckdb")+"?access_mode=read_only")
	if err != nil {
		return err
	}
	defer db.Close()
	direct := func() error {
		var n int64
		var s, lo, hi float64
		return db.QueryRowContext(ctx, smallAggregate).Scan(&n, &s, &lo, &hi)
	}
	if _, err := clientLoop(ctx, 1, 200*time.Millisecond, query); err != nil { // open the version
		return err
	}
	for _, c := range []int{1, 4, 16} {
		r.stepf("  %d clients: tt.query, then duckdb-go in-process", c)
		var res loadResult
		err := r.profile(fmt.Sprintf("direct-queries-%d", c), func() (err error) {
			res, err = clientLoop(ctx, c, r.sz.queryFor, query)
			return err
		})
		if err != nil {
			return err
		}
		db.SetMaxOpenConns(c)
		db.SetMaxIdleConns(c)
		base, err := clientLoop(ctx, c, r.sz.queryFor, direct)
		if err != nil {
			return fmt.Errorf("baseline: %w", err)
		}
		p := percentiles(res.lats, 0.5, 0.99)
		out := Result{Scenario: "direct queries", Variant: fmt.Sprintf("%d clients, aggregate of 1M rows", c), Unit: "queries/s", HigherIsBetter: true,
			Teatree: res.rate(), Baseline: base.rate(), BaselineName: "duckdb-go in-process", P50: p[0], P99: p[1], Count: res.done}
		var target func(Result) bool
		if c == 4 {
			out.Target = "≥ 0.8× in-process DuckDB"
			target = func(x Result) bool { return x.Ratio >= 0.8 }
		}
		r.add(out, target)
	}
	return nil
}

// largeResults runs a durable query of every row of a table and reads
// its pages as notifications from TT_NTF; the baseline reads the same
// pages, stored in a bare stream, with a raw JetStream consumer.
func (r *runner) largeResults(ctx context.Context) error {
	t, err := r.startTeatree(ctx, "large-results", stackOptions{syncAlways: true})
	if err != nil {
		return err
	}
	defer t.stop()
	rows := r.sz.largeRows
	r.stepf("  generating %d rows", rows)
	if _, err := t.createTable(ctx, &teatreev1.ModelSpec{Id: "large"}, rows, ""); err != nil {
		return err
	}
	const id = "large-1"
	cons, err := t.js.OrderedConsumer(ctx, t.names.NtfStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{t.names.NtfRequest("large", id)},
	})
	if err != nil {
		return err
	}
	job, _ := json.Marshal(map[string]any{"sql": "select * from big", "format": "arrow"})
	m := nats.NewMsg(t.names.Prefix() + ".call.duckdb.large")
	m.Header.Set(subject.HeaderMsgID, subject.MsgID("large", id))
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	m.Data = job
	r.stepf("  teatree: a durable query of %d rows, Arrow pages as notifications", rows)
	var pages []*nats.Msg
	var elapsed time.Duration
	err = r.profile("large-results", func() error {
		start := time.Now()
		if _, err := t.js.PublishMsg(ctx, m); err != nil {
			return err
		}
		pages, err = readPages(ctx, cons, r.sz.maxPhase*2)
		elapsed = time.Since(start)
		return err
	})
	if err != nil {
		return err
	}
	bytes := 0
	for _, p := range pages {
		bytes += len(p.Data)
	}
	total, _ := strconv.Atoi(pages[0].Header.Get(subject.HeaderRows))
	if total != rows {
		return fmt.Errorf("result has %d rows, want %d", total, rows)
	}
	r.stepf("  baseline: the same %d pages (%d MiB) read from a bare stream", len(pages), bytes>>20)
	base, err := r.largeBaseline(ctx, pages)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	r.add(Result{Scenario: "large results", Variant: fmt.Sprintf("%d rows, %d Arrow pages, %d MiB", rows, len(pages), bytes>>20),
		Unit: "rows/s", HigherIsBetter: true, Teatree: float64(rows) / elapsed.Seconds(), Baseline: float64(rows) / base.Seconds(),
		BaselineName: "raw JetStream consumer", Count: len(pages),
		Note: "teatree's figure includes running the query and storing its pages; the baseline only reads them"}, nil)
	return nil
}

// readPages reads result pages until the last one.
func readPages(ctx context.Context, cons jetstream.Consumer, timeout time.Duration) ([]*nats.Msg, error) {
	it, err := cons.Messages()
	if err != nil {
		return nil, err
	}
	defer it.Stop()
	var pages []*nats.Msg
	deadline := time.AfterFunc(timeout, it.Stop)
	defer deadline.Stop()
	for {
		msg, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("after %d pages: %w", len(pages), err)
		}
		h := msg.Headers()
		if h.Get(subject.HeaderStatus) == subject.StatusFailed {
			return nil, fmt.Errorf("query failed: %s", msg.Data())
		}
		pages = append(pages, &nats.Msg{Header: h, Data: msg.Data()})
		page, _ := strconv.Atoi(h.Get(subject.HeaderPage))
		n, _ := strconv.Atoi(h.Get(subject.HeaderPages))
		if page >= n {
			return pages, nil
		}
	}
}

func (r *runner) largeBaseline(ctx context.Context, pages []*nats.Msg) (time.Duration, error) {
	_, _, js, stop, err := r.startJetStream("large-results", true)
	if err != nil {
		return 0, err
	}
	defer stop()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RAW", Subjects: []string{"raw.>"}, Storage: jetstream.FileStorage}); err != nil {
		return 0, err
	}
	for _, p := range pages {
		m := nats.NewMsg("raw.large")
		m.Header, m.Data = p.Header, p.Data
		if _, err := js.PublishMsg(ctx, m); err != nil {
			return 0, err
		}
	}
	cons, err := js.OrderedConsumer(ctx, "RAW", jetstream.OrderedConsumerConfig{})
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := readPages(ctx, cons, time.Minute); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
