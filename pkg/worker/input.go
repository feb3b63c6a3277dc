package worker

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
)

// InputSchema is the name the job's input version is attached under, and
// the default schema of every connection of Input.DB.
const InputSchema = "input"

// Input is what a handler gets: the job, its arguments, and its input
// version (with the versions of its reads) in DuckDB.
type Input struct {
	Job  *calls.Job
	Args map[string]any
	// Attempt is this attempt's number, from 1.
	Attempt int
	// DB is an in-memory DuckDB with the input version's model.duckdb
	// attached read-only as "input" (the default, so tables are found by
	// name) and each read model's under its model id.
	DB *sql.DB

	j        *jobRun
	ctx      context.Context
	tmp      string
	mu       sync.Mutex
	lastSent time.Time
	sent     int
}

// openInput opens the job's versions: file:// URLs in place, http(s) URLs
// downloaded to a temporary directory first.
func openInput(ctx context.Context, j *jobRun) (*Input, error) {
	tmp, err := os.MkdirTemp(j.w.cfg.TempDir, "teatree-job-")
	if err != nil {
		return nil, fmt.Errorf("temp dir of a job: %w", err)
	}
	in := &Input{Job: j.job, Args: j.job.Args, Attempt: j.attempt, j: j, ctx: ctx, tmp: tmp}
	if in.Args == nil {
		in.Args = map[string]any{}
	}
	attach := []string{}
	add := func(v calls.Version, as string) error {
		path, err := in.local(ctx, v.DuckDB, filepath.Join(v.Model, "model.duckdb"))
		if err != nil {
			return fmt.Errorf("version %d of model %s: %w", v.Version, v.Model, err)
		}
		attach = append(attach, fmt.Sprintf("ATTACH IF NOT EXISTS %s AS %s (READ_ONLY)", quoteString(path), quoteIdent(as)))
		return nil
	}
	if err := add(j.job.Input, InputSchema); err != nil {
		in.close()
		return nil, err
	}
	for _, r := range j.job.Reads {
		if err := add(r, r.Model); err != nil {
			in.close()
			return nil, err
		}
	}
	// ATTACH holds for the database, USE for one connection: every
	// connection of the pool runs both.
	init := append(attach, "USE "+quoteIdent(InputSchema))
	// The job's DuckDB gets its share of the machine's cores. It is opened
	// on the handler's first use of DB: a handler that reads no data does
	// not pay for a DuckDB instance (most of a trivial job's CPU).
	threads := max(1, runtime.NumCPU()/j.w.cfg.Slots)
	in.DB = sql.OpenDB(&lazyConnector{open: func() (*duckdb.Connector, error) {
		c, err := duckdb.NewConnector(fmt.Sprintf("?threads=%d", threads), func(ex driver.ExecerContext) error {
			for _, q := range init {
				if _, err := ex.ExecContext(context.Background(), q, nil); err != nil {
					return apierr.Errorf(apierr.Internal, "attach the job's versions: %s: %v", q, err)
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("open duckdb: %w", err)
		}
		return c, nil
	}})
	return in, nil
}

func (in *Input) close() {
	if in.DB != nil {
		in.DB.Close()
	}
	os.RemoveAll(in.tmp)
}

// Direct is the input of a handler run outside any job, on db and args:
// the same code on data of the caller's choosing (the benchmarks' direct
// baseline). Its progress goes nowhere.
func Direct(db *sql.DB, args map[string]any) *Input {
	return &Input{Job: &calls.Job{Args: args}, Args: args, Attempt: 1, DB: db}
}

// Progress reports how far the handler is, fraction from 0 to 1, at most
// once every ProgressInterval (the contract's once a second); reports in
// between are dropped. It never fails the job: a lost report is logged.
func (in *Input) Progress(fraction float64, message string) {
	if in.j == nil {
		return // Direct: no job to report on
	}
	ctx := in.ctx
	in.mu.Lock()
	now := time.Now()
	if in.sent > 0 && now.Sub(in.lastSent) < in.j.w.cfg.ProgressInterval {
		in.mu.Unlock()
		return
	}
	in.sent++
	in.lastSent = now
	n := in.sent
	in.mu.Unlock()
	fraction = min(max(fraction, 0), 1)
	ev := calls.Event{Event: calls.EventProgress, Fraction: fraction, Message: message}
	if err := in.j.w.report(ctx, in.j.job, in.j.attempt, ev, n); err != nil {
		in.j.log.WarnContext(ctx, "report progress", "err", err)
	}
}

// Parquet is a local path of table's Parquet file in the input version,
// downloaded first when the job gives an http(s) URL.
func (in *Input) Parquet(ctx context.Context, table string) (string, error) {
	for _, t := range in.Job.Input.Tables {
		if t.Name == table {
			return in.local(ctx, t.Parquet, filepath.Join(in.Job.Input.Model, table+".parquet"))
		}
	}
	return "", apierr.Errorf(apierr.InvalidArgument, "version %d of model %s has no table %q", in.Job.Input.Version, in.Job.Input.Model, table)
}

// Query runs one read statement (SELECT, WITH, FROM, ...) on DB and
// returns its rows as Arrow record batches, for an Output; the connection
// is held until the reader is released. A statement that does not parse
// or does not read is invalid_argument. DuckDB runs every statement but
// the last of a text while it prepares it, before its type is known: a
// text from a caller must be split and checked first (sql_to_table does).
func (in *Input) Query(ctx context.Context, query string, args ...any) (array.RecordReader, error) {
	c, err := in.DB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	var rd array.RecordReader
	err = c.Raw(func(dc any) error {
		conn := dc.(*duckdb.Conn)
		if err := checkRead(ctx, conn, query); err != nil {
			return err
		}
		ar, err := duckdb.NewArrowFromConn(conn)
		if err != nil {
			return err
		}
		rd, err = ar.QueryContext(ctx, query, args...)
		return err
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	return &connReader{RecordReader: rd, conn: c}, nil
}

// checkRead refuses what is not exactly one read statement.
func checkRead(ctx context.Context, c *duckdb.Conn, query string) error {
	ps, err := c.PrepareContext(ctx, query)
	if err != nil {
		return apierr.Errorf(apierr.InvalidArgument, "query: %v", err)
	}
	defer ps.Close()
	typ, err := ps.(*duckdb.Stmt).StatementType()
	if err != nil {
		return apierr.Errorf(apierr.InvalidArgument, "query: %v", err)
	}
	if typ != duckdb.STATEMENT_TYPE_SELECT {
		return apierr.Errorf(apierr.InvalidArgument, "only a read statement (SELECT, WITH, FROM, ...) can be queried: %.60q", query)
	}
	return nil
}

// connReader releases its connection with its last reference.
type connReader struct {
	array.RecordReader
	conn *sql.Conn
	once sync.Once
}

func (r *connReader) Release() {
	r.RecordReader.Release()
	r.once.Do(func() { r.conn.Close() })
}

// local is a path of o on this machine: a file:// URL's own, or a
// download of an http(s) URL to name under the job's temp dir.
func (in *Input) local(ctx context.Context, o calls.Object, name string) (string, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return "", apierr.Errorf(apierr.Internal, "url of %s: %v", o.Key, err)
	}
	switch u.Scheme {
	case "file":
		return u.Path, nil
	case "http", "https":
	default:
		return "", apierr.Errorf(apierr.Internal, "url of %s: scheme %q: want file, http or https", o.Key, u.Scheme)
	}
	path := filepath.Join(in.tmp, name)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.URL, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", o.Key, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: HTTP %s", o.Key, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return "", fmt.Errorf("download %s: %w", o.Key, err)
	}
	return path, f.Close()
}

func quoteString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// lazyConnector opens its DuckDB on the first connection asked of it.
type lazyConnector struct {
	open func() (*duckdb.Connector, error)
	once sync.Once
	c    *duckdb.Connector
	err  error
}

func (l *lazyConnector) Connect(ctx context.Context) (driver.Conn, error) {
	l.once.Do(func() { l.c, l.err = l.open() })
	if l.err != nil {
		return nil, l.err
	}
	return l.c.Connect(ctx)
}

func (l *lazyConnector) Driver() driver.Driver { return duckdb.Driver{} }

// Close closes the DuckDB, if it was ever opened; database/sql calls it
// from DB.Close.
func (l *lazyConnector) Close() error {
	l.once.Do(func() { l.err = errors.New("the job's DuckDB is closed") }) // never opened
	if l.c == nil {
		return nil
	}
	return l.c.Close()
}
