// Package sqlstmt splits SQL text into statements and converts JSON
// parameters, for the write path and the query path alike, without a
// database: each statement can be checked before it runs.
package sqlstmt

import (
	"strconv"
	"strings"
)

// Statement is one statement of a request, with its numbered parameters
// renumbered from $1: Params[k-1] is the request parameter (1-based) that
// $k of Text stands for. DuckDB binds numbered parameters with gaps
// unreliably, and a request's $2 means its second parameter in every
// statement. Params is nil when the statement has no numbered parameter.
type Statement struct {
	Text   string
	Params []int
}

// Split splits SQL text on the semicolons that end statements,
// skipping those inside quotes, dollar-quoted strings and comments, so that
// each statement can be checked before it runs. Empty statements are dropped.
func Split(text string) []Statement {
	var out []Statement
	var cur strings.Builder
	numbers := map[int]int{} // request parameter -> statement parameter
	var params []int
	// code is whether the statement has more than comments and blanks:
	// DuckDB refuses an empty one with an error that is not the request's.
	code := false
	flush := func() {
		if s := strings.TrimSpace(cur.String()); s != "" && code {
			out = append(out, Statement{Text: s, Params: params})
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
