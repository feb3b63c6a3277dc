package dbmanager

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"

	"github.com/teatree-dev/teatree/pkg/subject"
)

type column struct{ name, typ string }

func hasColumn(cols []column, name string) bool {
	for _, c := range cols {
		if strings.EqualFold(c.name, name) {
			return true
		}
	}
	return false
}

// columns describes the result of a query without running it.
func (s *store) columns(ctx context.Context, query string) ([]column, error) {
	rows, err := s.conn.QueryContext(ctx, "DESCRIBE "+query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var name, typ string
		var null, key, def, extra any
		if err := rows.Scan(&name, &typ, &null, &key, &def, &extra); err != nil {
			return nil, err
		}
		cols = append(cols, column{name, typ})
	}
	return cols, rows.Err()
}

// tableColumns describes a user table, from the store's cache when it can:
// a small append would otherwise describe its table every time. The cache
// is forgotten whenever a table may change or a transaction rolls back.
func (s *store) tableColumns(ctx context.Context, table string) ([]column, error) {
	if cols, ok := s.tables[table]; ok {
		return cols, nil
	}
	cols, err := s.columns(ctx, "SELECT * FROM main."+quoteIdent(table))
	if err != nil {
		return nil, err
	}
	if s.tables == nil {
		s.tables = map[string][]column{}
	}
	s.tables[table] = cols
	return cols, nil
}

// forgetColumns drops the cache of table columns.
func (s *store) forgetColumns() { s.tables = nil }

// maxScannedBody bounds the NDJSON bodies ndjsonFits reads in Go.
const maxScannedBody = 64 << 10

// ndjsonFits reports whether a small NDJSON body in the request has only
// columns the table has, read in Go: then DuckDB need not detect the rows'
// schema before inserting them. Anything else (a line that is not an
// object, a new column, a large or uploaded body) is left to DuckDB.
func ndjsonFits(r *request, table []column) bool {
	if r.contentType != subject.ContentNDJSON || r.upload != "" || len(r.body) > maxScannedBody {
		return false
	}
	lines := 0
	for line := range bytes.Lines(r.body) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var rec map[string]json.RawMessage
		if json.Unmarshal(line, &rec) != nil {
			return false
		}
		for k := range rec {
			if !hasColumn(table, k) {
				return false
			}
		}
		lines++
	}
	return lines > 0
}
