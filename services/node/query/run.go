package query

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nuid"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/readguard"
	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/sqlstmt"
	"github.com/teatree-dev/teatree/pkg/statements"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// maxPageRows bounds page_rows: a page is one message.
const maxPageRows = 1_000_000

// Result is the answer to a query: its first page, and where the others
// are stored when there are more.
type Result struct {
	ID    string
	Meta  results.Meta
	First []byte
}

// Query runs one read statement on a version of model, once a slot is
// free; pages after the first are stored.
func (e *Executor) Query(ctx context.Context, model string, q *teatreev1.Query) (*Result, error) {
	// Waiting for a slot counts against the deadline too.
	ctx, cancel := context.WithTimeout(ctx, e.timeout(q))
	defer cancel()
	freeSlot, err := e.acquireSlot(ctx)
	if err != nil {
		return nil, err
	}
	defer freeSlot()
	return e.run(ctx, model, q, false)
}

// run runs a query in a slot its caller holds. With storeAll, every page is
// stored, the first too, even when it is the only one. Its error is the
// one place a query's failure becomes what its reader is told, direct or
// durable: with every path scrubbed, and logged whole when internal.
func (e *Executor) run(ctx context.Context, model string, q *teatreev1.Query, storeAll bool) (*Result, error) {
	res, err := e.read(ctx, model, q, storeAll)
	if err != nil {
		code, msg := apierr.From(err)
		if code == apierr.Internal {
			e.deps.Log.WarnContext(ctx, "query", "model", model, "err", err)
		}
		return nil, apierr.New(code, readguard.ScrubPaths(msg))
	}
	return res, nil
}

// read runs a query: run's work, with errors as they come.
func (e *Executor) read(ctx context.Context, model string, q *teatreev1.Query, storeAll bool) (*Result, error) {
	if err := subject.ValidateModel(model); err != nil {
		return nil, err
	}
	format := q.GetFormat()
	if format == "" {
		format = FormatJSON
	}
	ct, err := contentType(format)
	if err != nil {
		return nil, err
	}
	pageRows := q.GetPageRows()
	if pageRows == 0 {
		pageRows = e.cfg.PageRows
	}
	if pageRows < 0 || pageRows > maxPageRows {
		return nil, apierr.Errorf(apierr.InvalidArgument, "page_rows %d: want 1 to %d", pageRows, maxPageRows)
	}
	if q.GetVersion() > 0 && q.GetMinSeq() > 0 {
		return nil, apierr.New(apierr.InvalidArgument, "give version or min_seq, not both")
	}
	stmts, err := statements.Split(q.GetSql())
	if err != nil {
		return nil, err
	}
	if len(stmts) != 1 {
		return nil, apierr.Errorf(apierr.InvalidArgument, "a query is exactly one statement, not %d", len(stmts))
	}
	if err := readguard.Check(stmts[0].Text); err != nil {
		return nil, err
	}
	args, err := sqlstmt.Args(stmts[0], q.GetParams())
	if err != nil {
		return nil, apierr.New(apierr.InvalidArgument, err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, e.timeout(q))
	defer cancel()

	v, err := e.resolve(ctx, model, q)
	if err != nil {
		return nil, err
	}
	ver, release, err := e.versions.acquire(ctx, model, v)
	if err != nil {
		return nil, deadline(ctx, err)
	}
	defer release()
	conn, err := ver.db.Conn(ctx)
	if err != nil {
		return nil, deadline(ctx, err)
	}
	defer conn.Close()
	p := &pager{e: e, ctx: ctx, id: nuid.Next(), format: format, pageRows: pageRows, storeAll: storeAll,
		meta: results.Meta{Model: model, Version: v, ContentType: ct}}
	err = conn.Raw(func(dc any) error { return p.run(dc.(*duckdb.Conn), stmts[0].Text, args) })
	if err != nil {
		return nil, classify(ctx, err)
	}
	return p.finish()
}

// timeout is a query's deadline: its own, within the executor's ceiling.
func (e *Executor) timeout(q *teatreev1.Query) time.Duration {
	if t := time.Duration(q.GetTimeoutMs()) * time.Millisecond; t > 0 && t < e.cfg.Timeout {
		return t
	}
	return e.cfg.Timeout
}

// resolve picks the version a query reads: the pinned one, or the newest,
// waiting for one that holds min_seq.
func (e *Executor) resolve(ctx context.Context, model string, q *teatreev1.Query) (uint64, error) {
	spec, _, err := catalog.GetModel(ctx, e.deps.Models, model)
	if err != nil {
		return 0, err
	}
	if v := q.GetVersion(); v > 0 {
		if !catalog.VersionVisible(spec, v) {
			return 0, apierr.Errorf(apierr.NotFound, "model %s has no version %d (newest: %d)", model, v, spec.GetVersion())
		}
		return v, nil
	}
	if q.GetMinSeq() > spec.GetAppliedSeq() {
		if spec, err = e.waitForSeq(ctx, model, q.GetMinSeq()); err != nil {
			return 0, err
		}
	}
	if spec.GetVersion() == 0 {
		return 0, apierr.Errorf(apierr.NotFound, "model %s has no published version yet", model)
	}
	return spec.GetVersion(), nil
}

// waitForSeq asks the model's db-manager for a version now and waits until
// the catalog names one whose applied_seq is at least seq.
func (e *Executor) waitForSeq(ctx context.Context, model string, seq uint64) (*teatreev1.ModelSpec, error) {
	w, err := e.deps.Models.Watch(ctx, model)
	if err != nil {
		return nil, fmt.Errorf("watch model %s: %w", model, err)
	}
	defer w.Stop()
	ask := func() { _ = e.deps.NC.Publish(e.cfg.Names.SnapshotNow(model), nil) }
	ask()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case ent := <-w.Updates():
			if ent == nil {
				continue
			}
			spec, err := catalog.DecodeModel(ent.Value())
			if err == nil && spec.GetAppliedSeq() >= seq && spec.GetVersion() > 0 {
				return spec, nil
			}
		case <-tick.C:
			ask()
		case <-ctx.Done():
			return nil, apierr.Errorf(apierr.DeadlineExceeded, "no version of model %s holds seq %d before the deadline", model, seq)
		}
	}
}

// pager cuts a query's record batches into pages of at most pageRows rows
// and MaxPageBytes bytes, stores every page but the first, and keeps the
// first for the reply.
type pager struct {
	e        *Executor
	ctx      context.Context
	id       string
	format   string
	pageRows int64
	meta     results.Meta
	storeAll bool
	schema   *arrow.Schema
	cur      []arrow.RecordBatch
	curRows  int64
	first    []byte
}

func (p *pager) run(c *duckdb.Conn, text string, args []driver.NamedValue) error {
	ps, err := c.PrepareContext(p.ctx, text)
	if err != nil {
		return err
	}
	typ, err := ps.(*duckdb.Stmt).StatementType()
	ps.Close()
	if err != nil {
		return err
	}
	if typ != duckdb.STATEMENT_TYPE_SELECT {
		return apierr.Errorf(apierr.PermissionDenied, "only a read statement (SELECT, WITH, FROM, ...) can be a query: %.60q", text)
	}
	ar, err := duckdb.NewArrowFromConn(c)
	if err != nil {
		return err
	}
	values := make([]any, len(args))
	for i, a := range args {
		values[i] = a.Value
	}
	rd, err := ar.QueryContext(p.ctx, text, values...)
	if err != nil {
		return err
	}
	defer rd.Release()
	// Rows held for a page that is never flushed (an error) go back too.
	defer func() { release(p.cur); p.cur = nil }()
	p.schema = rd.Schema()
	for rd.Next() {
		rec := rd.RecordBatch()
		for off := int64(0); off < rec.NumRows(); {
			take := min(p.pageRows-p.curRows, rec.NumRows()-off)
			p.cur = append(p.cur, rec.NewSlice(off, off+take))
			p.curRows += take
			off += take
			if p.curRows == p.pageRows {
				if err := p.flush(); err != nil {
					return err
				}
			}
		}
	}
	if err := rd.Err(); err != nil {
		return err
	}
	if p.curRows > 0 || p.meta.Pages == 0 {
		return p.flush()
	}
	return nil
}

// flush encodes the rows held as one page, or as several when they take
// more than MaxPageBytes.
func (p *pager) flush() error {
	defer func() {
		for _, r := range p.cur {
			r.Release()
		}
		p.cur, p.curRows = nil, 0
	}()
	return p.emit(p.cur, p.curRows)
}

func (p *pager) emit(recs []arrow.RecordBatch, rows int64) error {
	b, err := encodePage(p.format, p.schema, recs)
	if err != nil {
		return err
	}
	if len(b) > p.e.cfg.MaxPageBytes {
		if rows <= 1 {
			return apierr.Errorf(apierr.PayloadTooLarge, "one row takes %d bytes, more than a page may (%d)", len(b), p.e.cfg.MaxPageBytes)
		}
		left, right := splitRows(recs, rows/2)
		defer release(left)
		defer release(right)
		if err := p.emit(left, rows/2); err != nil {
			return err
		}
		return p.emit(right, rows-rows/2)
	}
	p.meta.Pages++
	p.meta.Rows += rows
	if p.meta.Pages == 1 {
		p.first = b
		return nil
	}
	return p.e.deps.Results.PutPage(p.ctx, p.id, p.meta.Pages, b)
}

// finish stores the first page and the result's description when there
// is more than one page, or when every page is to be stored.
func (p *pager) finish() (*Result, error) {
	if p.meta.Pages > 1 || p.storeAll {
		if err := p.e.deps.Results.PutPage(p.ctx, p.id, 1, p.first); err != nil {
			return nil, err
		}
		if err := p.e.deps.Results.PutMeta(p.ctx, p.id, p.meta); err != nil {
			return nil, err
		}
	}
	return &Result{ID: p.id, Meta: p.meta, First: p.first}, nil
}

// splitRows splits record batches after n rows, as new slices.
func splitRows(recs []arrow.RecordBatch, n int64) (left, right []arrow.RecordBatch) {
	for _, r := range recs {
		switch {
		case n <= 0:
			right = append(right, r.NewSlice(0, r.NumRows()))
		case n >= r.NumRows():
			left = append(left, r.NewSlice(0, r.NumRows()))
		default:
			left = append(left, r.NewSlice(0, n))
			right = append(right, r.NewSlice(n, r.NumRows()))
		}
		n -= r.NumRows()
	}
	return left, right
}

func release(recs []arrow.RecordBatch) {
	for _, r := range recs {
		r.Release()
	}
}

// classify maps a query's failure to the contract's codes.
func classify(ctx context.Context, err error) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return err
	}
	if ctx.Err() != nil {
		return deadline(ctx, err)
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return err
	}
	msg := strings.TrimSpace(de.Error())
	switch de.Type {
	case duckdb.ErrorTypePermission:
		return apierr.New(apierr.PermissionDenied, msg)
	case duckdb.ErrorTypeInterrupt:
		return apierr.New(apierr.DeadlineExceeded, msg)
	case duckdb.ErrorTypeIO, duckdb.ErrorTypeFatal, duckdb.ErrorTypeInternal, duckdb.ErrorTypeConnection:
		return apierr.New(apierr.Internal, msg)
	}
	return apierr.New(apierr.SQLError, msg)
}

// deadline reports err as deadline_exceeded when the query's deadline ran out.
func deadline(ctx context.Context, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return apierr.Errorf(apierr.DeadlineExceeded, "the query ran past its deadline: %v", err)
	}
	return err
}
