package dbmanager

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/duckdb/duckdb-go/v2"
)

// store is a model's read-write DuckDB file with its two connections: conn,
// the writer's, and export, on which a version's Parquet files are written
// from a read transaction begun when the version was staged, while the
// writer goes on (DuckDB's MVCC keeps that read consistent). Both share one
// DuckDB instance: one buffer pool and thread pool per model, not one more
// per version.
type store struct {
	db     *sql.DB
	conn   *sql.Conn
	export *sql.Conn
	path   string
	// tables caches the columns of user tables (see tableColumns).
	tables map[string][]column
}

// newFileOptions apply to new model files only (files made before keep
// theirs). DuckDB's default 256 KiB blocks and oldest storage format make a
// one-row model's file about half a megabyte, and every version of it as
// large; with 16 KiB blocks and the storage format of DuckDB 1.2, which packs
// small tables' data and metadata into few blocks, it is about 60 KiB.
// Versions are copies of the file: DuckDB 1.2 or newer reads them.
const newFileOptions = "default_block_size=16384&storage_compatibility_version=v1.2.0"

// storeDirs are the folders a model's connections may reach: spool (request
// bodies spooled for DuckDB to read) and staging (the versions' Parquet
// files, written by the export connection).
type storeDirs struct{ spool, staging string }

// openStore opens (or creates) the read-write file at path. Its connections
// cannot reach the file system outside dirs, cannot load extensions and
// cannot change its configuration: the sql op runs client SQL on conn.
func openStore(ctx context.Context, path string, dirs storeDirs, memoryLimit string, threads int) (*store, error) {
	for _, d := range []string{dirs.spool, dirs.staging} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", d, err)
		}
	}
	settings := []string{
		fmt.Sprintf("SET allowed_directories=[%s, %s]", quoteString(dirs.spool+"/"), quoteString(dirs.staging+"/")),
		"SET enable_external_access=false",
		"SET allow_community_extensions=false",
		"SET autoinstall_known_extensions=false",
		"SET autoload_known_extensions=false",
	}
	if memoryLimit != "" {
		settings = append(settings, "SET memory_limit="+quoteString(memoryLimit))
	}
	if threads > 0 {
		settings = append(settings, fmt.Sprintf("SET threads=%d", threads))
	}
	settings = append(settings, "SET lock_configuration=true")
	// The settings are the instance's: made on its first connection, and
	// locked from then on.
	configured := false
	connector, err := duckdb.NewConnector(path+"?"+newFileOptions, func(ex driver.ExecerContext) error {
		if configured {
			return nil
		}
		for _, s := range settings {
			if _, err := ex.ExecContext(ctx, s, nil); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		configured = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	s := &store{db: db, path: path}
	if s.conn, err = db.Conn(ctx); err == nil {
		s.export, err = db.Conn(ctx)
	}
	if err != nil {
		s.close()
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	if err := s.init(ctx); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// The bookkeeping tables. _tt_state holds the stream sequence applied up to,
// the sequence up to which outcome events are known to be published, and
// the lease epoch of the writer that committed last;
// _tt_requests records the outcome of each recent request, written in the
// transaction that applies it, with who sent it: it is the durable record that events and
// notifications are derived from, and the request-id dedup table, indexed
// by request id so that each batch's duplicate check looks its ids up
// instead of scanning every recent request.
const schemaSQL = `
CREATE TABLE IF NOT EXISTS _tt_state (applied_seq UBIGINT NOT NULL, events_seq UBIGINT NOT NULL);
INSERT INTO _tt_state (applied_seq, events_seq) SELECT 0, 0 WHERE NOT EXISTS (SELECT 1 FROM _tt_state);
CREATE TABLE IF NOT EXISTS _tt_requests (
	request_id VARCHAR NOT NULL,
	seq UBIGINT NOT NULL,
	op VARCHAR NOT NULL,
	status VARCHAR NOT NULL,
	rows_affected BIGINT,
	error_code VARCHAR,
	error_message VARCHAR,
	applied_at TIMESTAMPTZ NOT NULL,
	principal VARCHAR
);
ALTER TABLE _tt_requests ADD COLUMN IF NOT EXISTS principal VARCHAR;
ALTER TABLE _tt_state ADD COLUMN IF NOT EXISTS epoch UBIGINT DEFAULT 0;
CREATE INDEX IF NOT EXISTS _tt_requests_id ON _tt_requests (request_id);`

func (s *store) init(ctx context.Context) error {
	if _, err := s.conn.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("create bookkeeping tables: %w", err)
	}
	return s.dropNotifyURLs(ctx)
}

// dropNotifyURLs drops the notify_url column that files written before
// teatree kept requests' webhooks to itself have: every reader of a
// version could read another principal's webhook there. DuckDB alters no
// table an index depends on, so the index is made again.
func (s *store) dropNotifyURLs(ctx context.Context) error {
	var n int
	if err := s.conn.QueryRowContext(ctx, `SELECT count(*) FROM duckdb_columns()
		WHERE table_name = '_tt_requests' AND column_name = 'notify_url'`).Scan(&n); err != nil || n == 0 {
		return err
	}
	if _, err := s.conn.ExecContext(ctx, `DROP INDEX _tt_requests_id;
ALTER TABLE _tt_requests DROP COLUMN notify_url;
CREATE INDEX _tt_requests_id ON _tt_requests (request_id);`); err != nil {
		return fmt.Errorf("drop _tt_requests.notify_url: %w", err)
	}
	return nil
}

// fileState is what _tt_state says of the file.
type fileState struct {
	applied, events uint64
	// epoch is the lease epoch of the writer that committed last; 0 in a
	// file written before teatree recorded it.
	epoch uint64
}

func (s *store) state(ctx context.Context) (fileState, error) {
	var fs fileState
	err := s.conn.QueryRowContext(ctx, "SELECT applied_seq, events_seq, epoch FROM _tt_state").Scan(&fs.applied, &fs.events, &fs.epoch)
	if err != nil {
		return fileState{}, fmt.Errorf("read applied_seq: %w", err)
	}
	return fs, nil
}

func (s *store) close() error {
	var errs []error
	for _, c := range []*sql.Conn{s.export, s.conn} {
		if c != nil {
			errs = append(errs, c.Close())
		}
	}
	errs = append(errs, s.db.Close())
	return errors.Join(errs...)
}

// withDriverConn runs f with the underlying duckdb connection.
func (s *store) withDriverConn(f func(*duckdb.Conn) error) error {
	return s.conn.Raw(func(dc any) error { return f(dc.(*duckdb.Conn)) })
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// quoteString quotes an SQL string literal.
func quoteString(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }
