// Package statements splits the SQL of a request into the statements that
// DuckDB will run, so that each can be checked before it runs. It is shared
// by the write path (sql mutations) and the read path (queries).
package statements

import (
	"errors"
	"sync"

	"github.com/duckdb/duckdb-go/v2/mapping"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/sqlstmt"
)

// Split splits text with sqlstmt.Split and checks each piece with DuckDB's
// own parser. DuckDB runs every statement but the last of a text it is
// asked to prepare, before its type can be checked; where the splitter and
// DuckDB's parser disagree (backslash escapes in E-strings, $ inside
// identifiers, nested comments, a comment ended by \r), a statement hidden
// that way would run unchecked, so such a piece is refused.
func Split(text string) ([]sqlstmt.Statement, error) {
	stmts := sqlstmt.Split(text)
	for _, s := range stmts {
		n, err := count(s.Text)
		if err != nil {
			return nil, err
		}
		if n > 1 {
			return nil, apierr.Errorf(apierr.InvalidArgument, "statement %.60q: DuckDB reads %d statements in it (quotes, comments or $ that split differently); write it plainly", s.Text, n)
		}
	}
	return stmts, nil
}

// parser is a DuckDB database of its own that only parses: it runs nothing.
var parser struct {
	once sync.Once
	mu   sync.Mutex
	conn mapping.Connection
	err  error
}

// count returns how many statements DuckDB's parser reads in text; 0 when
// it cannot parse it (preparing it then reports why).
func count(text string) (int, error) {
	parser.once.Do(func() {
		var config mapping.Config
		if mapping.CreateConfig(&config) == mapping.StateError {
			parser.err = errors.New("create the statement parser's config")
			return
		}
		defer mapping.DestroyConfig(&config)
		mapping.SetConfig(config, "threads", "1")
		var db mapping.Database
		var msg string
		if mapping.OpenExt("", &db, config, &msg) == mapping.StateError {
			mapping.Close(&db)
			parser.err = errors.New("open the statement parser: " + msg)
			return
		}
		if mapping.Connect(db, &parser.conn) == mapping.StateError {
			mapping.Close(&db)
			parser.err = errors.New("connect the statement parser")
		}
	})
	if parser.err != nil {
		return 0, parser.err
	}
	parser.mu.Lock()
	defer parser.mu.Unlock()
	var stmts mapping.ExtractedStatements
	n := mapping.ExtractStatements(parser.conn, text, &stmts)
	mapping.DestroyExtracted(&stmts)
	return int(n), nil
}
