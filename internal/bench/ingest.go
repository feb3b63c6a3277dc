package bench

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// ingestBatchRows is the rows of one bulk-ingest batch.
const ingestBatchRows = 64 << 10

var ingestSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "amount", Type: arrow.PrimitiveTypes.Float64},
	{Name: "region", Type: arrow.BinaryTypes.String},
	{Name: "at", Type: arrow.FixedWidthTypes.Timestamp_us},
}, nil)

// ingestBatch is batch b as an Arrow IPC stream of 64k rows.
func ingestBatch(b int) ([]byte, error) {
	mem := memory.DefaultAllocator
	rb := array.NewRecordBuilder(mem, ingestSchema)
	defer rb.Release()
	ids := rb.Field(0).(*array.Int64Builder)
	amounts := rb.Field(1).(*array.Float64Builder)
	regions := rb.Field(2).(*array.StringBuilder)
	ats := rb.Field(3).(*array.TimestampBuilder)
	base := int64(b) * ingestBatchRows
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	for i := range int64(ingestBatchRows) {
		id := base + i
		ids.Append(id)
		amounts.Append(float64(id%10_000) / 100)
		regions.Append("region-" + strconv.FormatInt(id%97, 10))
		ats.Append(arrow.Timestamp(t0 + id*1000))
	}
	rec := rb.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(ingestSchema), ipc.WithAllocator(mem))
	if err := w.Write(rec); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// bulkIngest appends Arrow batches of 64k rows end to end (publish →
// applied notification) and, as the baseline, inserts the same batches
// into a DuckDB file through duckdb-go's Arrow interface, one transaction
// per batch.
func (r *runner) bulkIngest(ctx context.Context) error {
	nBatches := max(1, r.sz.ingestRows/ingestBatchRows)
	rows := nBatches * ingestBatchRows
	// A handful of distinct batches, sent round robin: generating 5M rows
	// is not what is measured.
	distinct := min(nBatches, 8)
	batches := make([][]byte, distinct)
	for i := range batches {
		b, err := ingestBatch(i)
		if err != nil {
			return err
		}
		batches[i] = b
	}
	t, err := r.startTeatree(ctx, "bulk-ingest", stackOptions{syncAlways: true})
	if err != nil {
		return err
	}
	defer t.stop()
	if err := t.createModels(ctx, specs([]string{"ingest"})); err != nil {
		return err
	}
	r.stepf("  teatree: %d rows in %d Arrow batches of %d rows (%.1f MiB each)", rows, nBatches, ingestBatchRows, float64(len(batches[0]))/(1<<20))
	// Eight batches in flight: a publisher that keeps the db-manager busy
	// without queueing the whole data set.
	const inflight = 8
	sem := make(chan struct{}, inflight)
	tr, err := newTracker(t.nc, t.names, "ingest", nBatches, func(int) { <-sem })
	if err != nil {
		return err
	}
	start := time.Now()
	err = r.profile("bulk-ingest", func() error {
		for k := range nBatches {
			sem <- struct{}{}
			m := nats.NewMsg(t.names.Mut("ingest", subject.OpAppend))
			m.Header.Set(subject.HeaderMsgID, subject.MsgID("ingest", tr.id(k)))
			m.Header.Set(subject.HeaderTable, "orders")
			m.Header.Set(subject.HeaderContentType, subject.ContentArrow)
			m.Data = batches[k%distinct]
			tr.issue(k, time.Now())
			if _, err := t.js.PublishMsgAsync(m); err != nil {
				return err
			}
		}
		return tr.wait(ctx, t, r.sz.maxPhase*3)
	})
	if err != nil {
		return err
	}
	res := tr.result(start)
	if res.failed > 0 {
		return fmt.Errorf("%d batches failed", res.failed)
	}
	r.stepf("  baseline: the same batches into a DuckDB file with duckdb-go")
	base, err := ingestBaseline(ctx, filepath.Join(r.opt.Work, "ingest-baseline.duckdb"), batches, nBatches)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	tps := float64(rows) / res.elapsed.Seconds()
	bps := float64(rows) / base.Seconds()
	r.add(Result{Scenario: "bulk ingest", Variant: fmt.Sprintf("%d rows, 64k-row Arrow batches", rows), Unit: "rows/s", HigherIsBetter: true,
		Teatree: tps, Baseline: bps, BaselineName: "raw DuckDB", Count: rows, Notifications: res.notifications(), Target: "≥ 0.8× raw DuckDB"},
		func(x Result) bool { return x.Ratio >= 0.8 })
	return nil
}

// ingestBaseline inserts the batches into a fresh DuckDB file, one
// transaction each, the way the db-manager does but without teatree.
func ingestBaseline(ctx context.Context, path string, batches [][]byte, n int) (time.Duration, error) {
	db, err := sql.Open("duckdb", path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	start := time.Now()
	for k := range n {
		rd, err := ipc.NewReader(bytes.NewReader(batches[k%len(batches)]))
		if err != nil {
			return 0, err
		}
		var unregister func()
		err = conn.Raw(func(dc any) error {
			ar, err := duckdb.NewArrowFromConn(dc.(*duckdb.Conn))
			if err != nil {
				return err
			}
			unregister, err = ar.RegisterView(rd, "batch")
			return err
		})
		if err != nil {
			rd.Release()
			return 0, err
		}
		stmt := "INSERT INTO orders SELECT * FROM batch"
		if k == 0 {
			stmt = "CREATE TABLE orders AS SELECT * FROM batch"
		}
		_, err = conn.ExecContext(ctx, stmt)
		unregister()
		rd.Release()
		if err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
