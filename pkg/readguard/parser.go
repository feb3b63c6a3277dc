package readguard

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"sync"

	// The DuckDB driver, for the parser's own database.
	_ "github.com/duckdb/duckdb-go/v2"
)

// tree is what DuckDB's json_serialize_sql makes of a text: its
// statements' syntax trees, or why it made none.
type tree struct {
	Error      bool   `json:"error"`
	ErrorType  string `json:"error_type"`
	Statements []any  `json:"statements"`
}

// parser is an in-memory DuckDB of its own that only parses: it has no
// data, and reaches no file.
var parser struct {
	once sync.Once
	db   *sql.DB
	err  error
}

// parse serializes text with DuckDB's parser. json_serialize_sql only
// parses: it binds nothing and runs nothing of the text.
func parse(text string) (*tree, error) {
	parser.once.Do(func() {
		parser.db, parser.err = sql.Open("duckdb", "?threads=1&enable_external_access=false&autoload_known_extensions=false&lock_configuration=true")
	})
	if parser.err != nil {
		return nil, fmt.Errorf("open the query guard's parser: %w", parser.err)
	}
	var out string
	if err := parser.db.QueryRow("SELECT json_serialize_sql($1::VARCHAR)::VARCHAR", text).Scan(&out); err != nil {
		return nil, fmt.Errorf("parse the query: %w", err)
	}
	t := &tree{}
	if err := json.Unmarshal([]byte(out), t); err != nil {
		return nil, fmt.Errorf("read the query's syntax tree: %w", err)
	}
	return t, nil
}
