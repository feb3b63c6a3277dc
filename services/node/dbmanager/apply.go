package dbmanager

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/readguard"
	"github.com/teatree-dev/teatree/pkg/sqlstmt"
	"github.com/teatree-dev/teatree/pkg/statements"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// nodeError marks a failure of the node rather than of the request (disk,
// DuckDB invalidated, shutdown): the batch is retried, never skipped.
type nodeError struct{ err error }

func (e nodeError) Error() string { return e.err.Error() }
func (e nodeError) Unwrap() error { return e.err }

func isNodeError(err error) bool {
	var ne nodeError
	return errors.As(err, &ne)
}

// oomError is DuckDB running out of memory while applying a request. It is
// neither the request's fault nor the node's yet: the batch is retried in
// smaller parts, and only a request that alone runs out of memory fails.
type oomError struct{ err error }

func (e oomError) Error() string { return e.err.Error() }
func (e oomError) Unwrap() error { return e.err }

func isOOM(err error) bool {
	var oe oomError
	return errors.As(err, &oe)
}

// classify turns an error of applying a request into a request error with
// the contract code that fits, an oomError, or a nodeError. DuckDB's I/O and
// fatal errors, interrupts and anything not from DuckDB are the node's
// fault; an interrupt by the request's own deadline is turned into the
// request's failure by the caller, which knows why its context ended.
func classify(err error, code apierr.Code) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return err
	}
	var de *duckdb.Error
	if !errors.As(err, &de) {
		return nodeError{err}
	}
	switch de.Type {
	case duckdb.ErrorTypeIO, duckdb.ErrorTypeFatal, duckdb.ErrorTypeInterrupt, duckdb.ErrorTypeConnection:
		return nodeError{err}
	case duckdb.ErrorTypeOutOfMemory:
		return oomError{err}
	case duckdb.ErrorTypeInternal:
		code = apierr.Internal
	case duckdb.ErrorTypeInvalidInput, duckdb.ErrorTypeParser:
		if code == apierr.SchemaMismatch {
			code = apierr.InvalidArgument
		}
	case duckdb.ErrorTypePermission:
		code = apierr.PermissionDenied
	}
	return apierr.New(code, strings.TrimSpace(de.Error()))
}

// applyResult is what applying one request changed.
type applyResult struct {
	rows int64
	// tables that changed; allTables when the request may have changed any.
	tables    []string
	allTables bool
}

func (m *Manager) apply(ctx context.Context, st *store, r *request) (applyResult, error) {
	switch r.op {
	case subject.OpAppend, subject.OpUpsert:
		return m.applyRows(ctx, st, r)
	case subject.OpSQL:
		body, err := m.requestBody(ctx, r)
		if err != nil {
			return applyResult{}, err
		}
		return applySQL(ctx, st, body)
	default: // call: parseRequest admits nothing else
		body, err := m.requestBody(ctx, r)
		if err != nil {
			return applyResult{}, err
		}
		return m.applyCall(ctx, st, body)
	}
}

// requestBody is the request's body: in the message, or uploaded ahead of
// it when too large for one (any op: the gateway uploads large sql bodies).
func (m *Manager) requestBody(ctx context.Context, r *request) ([]byte, error) {
	if r.upload == "" {
		return r.body, nil
	}
	return m.bodyFromRef(ctx, r.upload)
}

func (m *Manager) applyRows(ctx context.Context, st *store, r *request) (applyResult, error) {
	if r.decoded == nil {
		body, err := m.requestBody(ctx, r)
		if err != nil {
			return applyResult{}, err
		}
		spool := r.spool
		if spool == "" {
			spool = strconv.FormatUint(r.seq, 10)
		}
		d, err := decode(body, r.contentType, filepath.Join(m.spoolDir(), spool))
		if err != nil {
			return applyResult{}, classify(err, apierr.InvalidArgument)
		}
		r.decoded = d
	}
	src, release, err := st.source(r.decoded, r.seq)
	if err != nil {
		return applyResult{}, err
	}
	defer release()

	tableCols, err := st.tableColumns(ctx, r.table)
	if err != nil {
		var de *duckdb.Error
		if !errors.As(err, &de) || de.Type != duckdb.ErrorTypeCatalog {
			return applyResult{}, classify(err, apierr.Internal)
		}
		if r.spool != "" {
			return applyResult{}, errCombinedNewTable
		}
		tableCols = nil // the first append creates the table from the data
	}
	var srcCols []column
	if !(r.op == subject.OpAppend && tableCols != nil && ndjsonFits(r, tableCols)) {
		// Ask DuckDB what the rows hold: their columns and types.
		if srcCols, err = st.columns(ctx, "SELECT * FROM "+src); err != nil {
			return applyResult{}, classify(err, apierr.InvalidArgument)
		}
	}
	for _, k := range r.keys {
		if !hasColumn(srcCols, k) {
			return applyResult{}, apierr.Errorf(apierr.InvalidArgument, "key column %q is not in the rows", k)
		}
		if tableCols != nil && !hasColumn(tableCols, k) {
			return applyResult{}, apierr.Errorf(apierr.SchemaMismatch, "key column %q is not in table %s", k, r.table)
		}
	}
	t := "main." + quoteIdent(r.table)
	if tableCols == nil {
		st.forgetColumns()
		if _, err := st.exec(ctx, "CREATE TABLE "+t+" AS SELECT * FROM "+src); err != nil {
			return applyResult{}, classify(err, apierr.InvalidArgument)
		}
		// DuckDB reports no row count for CREATE TABLE AS; the new table
		// holds exactly the rows of the request.
		var n int64
		if err := st.conn.QueryRowContext(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
			return applyResult{}, classify(err, apierr.Internal)
		}
		return applyResult{rows: n, tables: []string{r.table}}, nil
	}
	var unknown []column
	for _, c := range srcCols {
		if !hasColumn(tableCols, c.name) {
			unknown = append(unknown, c)
		}
	}
	if len(unknown) > 0 {
		if !m.cfg.Spec.GetAllowNewColumns() {
			names := make([]string, len(unknown))
			for i, c := range unknown {
				names[i] = c.name
			}
			return applyResult{}, apierr.Errorf(apierr.SchemaMismatch, "table %s has no column %s (the model does not allow new columns)", r.table, strings.Join(names, ", "))
		}
		st.forgetColumns()
		for _, c := range unknown {
			if _, err := st.exec(ctx, "ALTER TABLE "+t+" ADD COLUMN "+quoteIdent(c.name)+" "+c.typ); err != nil {
				return applyResult{}, classify(err, apierr.SchemaMismatch)
			}
		}
	}
	var q string
	if r.op == subject.OpAppend {
		if r.replace {
			// Tt-Mode: replace, in the same transaction as the insert.
			if _, err := st.exec(ctx, "DELETE FROM "+t); err != nil {
				return applyResult{}, classify(err, apierr.SchemaMismatch)
			}
		}
		q = "INSERT INTO " + t + " BY NAME SELECT * FROM " + src
	} else {
		q = mergeSQL(t, src, srcCols, r.keys)
	}
	n, err := st.exec(ctx, q)
	if err != nil {
		return applyResult{}, classify(err, apierr.SchemaMismatch)
	}
	return applyResult{rows: n, tables: []string{r.table}}, nil
}

// errCombinedNewTable refuses to combine appends to a table that does not
// exist yet: the first request alone decides its columns.
var errCombinedNewTable = apierr.New(apierr.InvalidArgument, "combined appends need an existing table")

// combinable reports whether r may be applied together with neighbours of
// the same table: a single-statement NDJSON append whose body is in the
// message. Applied alone, each would parse, describe and insert a spool file
// of its own: for small requests that is most of their cost.
func combinable(r *request) bool {
	return r.op == subject.OpAppend && !r.replace && r.contentType == subject.ContentNDJSON && r.upload == "" && r.invalid == nil
}

// applyCombined appends the rows of consecutive combinable requests to one
// table in one statement. Any failure, or a row count that does not add up
// to the requests' records, is returned: the caller rolls back and applies
// the requests one by one, so each keeps exactly the outcome it would have
// had alone.
func (m *Manager) applyCombined(ctx context.Context, st *store, reqs []*request) ([]applyResult, error) {
	counts := make([]int64, len(reqs))
	var body []byte
	var total int64
	for i, r := range reqs {
		counts[i] = ndjsonRecords(r.body)
		if counts[i] == 0 {
			return nil, apierr.New(apierr.InvalidArgument, "a request without rows")
		}
		total += counts[i]
		body = append(body, r.body...)
		if body[len(body)-1] != '\n' {
			body = append(body, '\n')
		}
	}
	all := &request{seq: reqs[0].seq, op: subject.OpAppend, table: reqs[0].table, contentType: subject.ContentNDJSON,
		body: body, spool: "combined-" + strconv.FormatUint(reqs[0].seq, 10)}
	defer func() {
		if all.decoded != nil {
			all.decoded.release()
		}
	}()
	res, err := m.applyRows(ctx, st, all)
	if err != nil {
		return nil, err
	}
	if res.rows != total {
		return nil, apierr.Errorf(apierr.InvalidArgument, "combined appends inserted %d rows, the requests hold %d records", res.rows, total)
	}
	out := make([]applyResult, len(reqs))
	for i := range reqs {
		out[i] = applyResult{rows: counts[i], tables: res.tables}
	}
	return out, nil
}

// ndjsonRecords counts the lines of an NDJSON body that are not blank.
func ndjsonRecords(b []byte) int64 {
	var n int64
	for line := range bytes.Lines(b) {
		if len(bytes.TrimSpace(line)) > 0 {
			n++
		}
	}
	return n
}

// mergeSQL replaces the rows whose key matches and inserts the others. It
// needs no declared key; a NULL key matches a NULL key.
func mergeSQL(table, src string, cols []column, keys []string) string {
	var on, set []string
	for _, k := range keys {
		on = append(on, "_tt_t."+quoteIdent(k)+" IS NOT DISTINCT FROM _tt_s."+quoteIdent(k))
	}
	for _, c := range cols {
		if !containsFold(keys, c.name) {
			set = append(set, quoteIdent(c.name)+" = _tt_s."+quoteIdent(c.name))
		}
	}
	q := "MERGE INTO " + table + " AS _tt_t USING (SELECT * FROM " + src + ") AS _tt_s ON " + strings.Join(on, " AND ")
	if len(set) > 0 {
		q += " WHEN MATCHED THEN UPDATE SET " + strings.Join(set, ", ")
	}
	return q + " WHEN NOT MATCHED THEN INSERT BY NAME"
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

func (s *store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := s.conn.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func applySQL(ctx context.Context, st *store, body []byte) (applyResult, error) {
	var m teatreev1.SqlMutation
	if err := protojson.Unmarshal(body, &m); err != nil {
		return applyResult{}, apierr.Errorf(apierr.InvalidArgument, `sql body: want {"sql": "...", "params": [...]}: %v`, err)
	}
	return runSQL(ctx, st, m.GetSql(), m.GetParams())
}

// runSQL runs the statements of text with params under the rules of a sql
// mutation.
func runSQL(ctx context.Context, st *store, text string, params []*structpb.Value) (applyResult, error) {
	st.forgetColumns() // its statements may change any table
	if err := statements.CheckReserved(text); err != nil {
		return applyResult{}, err
	}
	if err := readguard.CheckWrite(text); err != nil {
		return applyResult{}, err
	}
	stmts, err := statements.Split(text)
	var ae *apierr.Error
	if err != nil && !errors.As(err, &ae) {
		return applyResult{}, nodeError{err}
	}
	if err != nil {
		return applyResult{}, err
	}
	if len(stmts) == 0 {
		return applyResult{}, apierr.New(apierr.InvalidArgument, "sql body: no statement")
	}
	var total int64
	err = st.withDriverConn(func(c *duckdb.Conn) error {
		for _, s := range stmts {
			n, err := execStatement(ctx, c, s, params)
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	if err != nil {
		return applyResult{}, classify(err, apierr.SQLError)
	}
	return applyResult{rows: total, allTables: true}, nil
}

func execStatement(ctx context.Context, c *duckdb.Conn, s sqlstmt.Statement, params []*structpb.Value) (int64, error) {
	ps, err := c.PrepareContext(ctx, s.Text)
	if err != nil {
		return 0, err
	}
	stmt := ps.(*duckdb.Stmt)
	defer stmt.Close()
	typ, err := stmt.StatementType()
	if err != nil {
		return 0, err
	}
	if err := statements.CheckMutation(typ, s.Text); err != nil {
		return 0, err
	}
	args, err := sqlstmt.Args(s, params)
	if err != nil {
		return 0, apierr.New(apierr.InvalidArgument, err.Error())
	}
	if n := stmt.NumInput(); n > len(args) {
		return 0, apierr.Errorf(apierr.InvalidArgument, "statement %.60q takes %d parameters, the request has %d", s.Text, n, len(args))
	}
	res, err := stmt.ExecContext(ctx, args)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
