package dbmanager

import (
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/duckdb/duckdb-go/v2/mapping"
)

// statement is one statement of a sql mutation, with its numbered
// parameters renumbered from $1: params[k-1] is the request parameter
// (1-based) that $k of text stands for. DuckDB binds numbered parameters
// with gaps unreliably, and a request's $2 means its second parameter in
// every statement.
type statement struct {
	text   string
	params []int
}

// splitStatements splits SQL text on the semicolons that end statements,
// skipping those inside quotes, dollar-quoted strings and comments, so that
// each statement can be checked before it runs. Empty statements are dropped.
func splitStatements(text string) []statement {
	var out []statement
	var cur strings.Builder
	numbers := map[int]int{} // request parameter -> statement parameter
	var params []int
	// code is whether the statement has more than comments and blanks:
	// DuckDB refuses an empty one with an error that is not the request's.
	code := false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" && code {
			out = append(out, statement{text: s, params: params})
		}
		cur.Reset()
		numbers, params, code = map[int]int{}, nil, false
	}
	for i := 0; i < len(text); i++ {
		c := text[i]
		end := i
		if !strings.ContainsRune(" \t\n\r\f\v;", rune(c)) && !strings.HasPrefix(text[i:], "--") && !strings.HasPrefix(text[i:], "/*") {
			code = true
		}
		switch {
		case c == '\'' || c == '"':
			end = skipQuoted(text, i, c)
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			end = indexFrom(text, i, "\n")
		case c == '/' && strings.HasPrefix(text[i:], "/*"):
			end = indexFrom(text, i+2, "*/")
		case c == '$':
			if tag, ok := dollarTag(text[i:]); ok {
				end = indexFrom(text, i+len(tag), tag)
			} else if j := digitsEnd(text, i+1); j > i+1 {
				n, _ := strconv.Atoi(text[i+1 : j])
				k, seen := numbers[n]
				if !seen {
					params = append(params, n)
					k = len(params)
					numbers[n] = k
				}
				cur.WriteString("$" + strconv.Itoa(k))
				i = j - 1
				continue
			}
		case c == ';':
			flush()
			continue
		}
		end = min(end, len(text)-1)
		cur.WriteString(text[i : end+1])
		i = end
	}
	flush()
	return out
}

// indexFrom returns the index of the last byte of the first sub at or after
// i; the last index of text when sub does not occur.
func indexFrom(text string, i int, sub string) int {
	if j := strings.Index(text[i:], sub); j >= 0 {
		return i + j - 1 + len(sub)
	}
	return len(text) - 1
}

func digitsEnd(text string, i int) int {
	for i < len(text) && text[i] >= '0' && text[i] <= '9' {
		i++
	}
	return i
}

// skipQuoted returns the index of the quote closing the one at i; a doubled
// quote is an escaped one.
func skipQuoted(text string, i int, q byte) int {
	for j := i + 1; j < len(text); j++ {
		if text[j] == q {
			if j+1 < len(text) && text[j+1] == q {
				j++
				continue
			}
			return j
		}
	}
	return len(text) - 1
}

// dollarTag returns the $tag$ opening a dollar-quoted string at the start of
// s. A $ followed by digits is a parameter, not a tag.
func dollarTag(s string) (string, bool) {
	for j := 1; j < len(s); j++ {
		c := s[j]
		if c == '$' {
			return s[:j+1], true
		}
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || j > 1 && c >= '0' && c <= '9') {
			return "", false
		}
	}
	return "", false
}

// DuckDB runs every statement but the last of a text it is asked to
// prepare, before teatree can check its type. splitStatements and DuckDB's
// parser disagree on some texts (backslash escapes in E-strings, $ inside
// identifiers, nested comments, a comment ended by \r), and a statement
// hidden that way would run unchecked; parser counts the statements of a
// text as DuckDB reads them, in a database of its own that runs nothing.
var parser struct {
	once sync.Once
	mu   sync.Mutex
	conn mapping.Connection
	err  error
}

// duckdbStatements returns how many statements DuckDB's parser reads in
// text; 0 when it cannot parse it.
func duckdbStatements(text string) (int, error) {
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
