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

// store is a model's read-write DuckDB file and its one connection.
type store struct {
	db   *sql.DB
	conn *sql.Conn
	path string
}

// openStore opens (or creates) the read-write file at path. The connection
// cannot reach the file system outside spoolDir, cannot load extensions and
// cannot change its configuration: the sql op runs client SQL on it.
func openStore(ctx context.Context, path, spoolDir string, memoryLimit string, threads int) (*store, error) {
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		return nil, fmt.Errorf("create spool dir: %w", err)
	}
	settings := []string{
		fmt.Sprintf("SET allowed_directories=[%s]", quoteString(spoolDir+"/")),
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
	connector, err := duckdb.NewConnector(path, func(ex driver.ExecerContext) error {
		for _, s := range settings {
			if _, err := ex.ExecContext(ctx, s, nil); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	s := &store{db: db, conn: conn, path: path}
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
// transaction that applies it: it is the durable record that events and
// notifications are derived from, and the request-id dedup table.
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
	notify_url VARCHAR
);
ALTER TABLE _tt_requests ADD COLUMN IF NOT EXISTS notify_url VARCHAR;
ALTER TABLE _tt_state ADD COLUMN IF NOT EXISTS epoch UBIGINT DEFAULT 0;`

func (s *store) init(ctx context.Context) error {
	if _, err := s.conn.ExecContext(ctx, schemaSQL); err != nil {
		return fmt.Errorf("create bookkeeping tables: %w", err)
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
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
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
