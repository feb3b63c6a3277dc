package readguard

import (
	"regexp"
	"sort"
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// wordsOf finds, as words anywhere in a text (strings and comments too),
// extra and every refused name but those in called; a name in called only
// where a call follows it, through spaces and comments.
func wordsOf(extra []string, called map[string]bool) *regexp.Regexp {
	var names []string
	for n := range refused {
		if !called[n] {
			names = append(names, n)
		}
	}
	names = append(names, extra...)
	sort.Strings(names)
	alt := `(` + strings.Join(names, "|") + `)(?:[^a-z0-9_$]|$)`
	if len(called) > 0 {
		var calls []string
		for n := range called {
			calls = append(calls, n)
		}
		sort.Strings(calls)
		// Greedy: a comment may nest, so it ends at the last */ that
		// still leaves a call.
		alt += `|(` + strings.Join(calls, "|") + `)(?:\s|/\*(?s:.*)\*/|--[^\n]*\n)*\(`
	}
	return regexp.MustCompile(`(?i)(?:^|[^a-z0-9_$])(?:` + alt + `)`)
}

// queryWords finds a refused name, or PRAGMA, in a read statement.
var queryWords = wordsOf([]string{"pragma"}, nil)

// checkWords checks a statement that DuckDB's parser reads but will not
// serialize: a PRAGMA (which DuckDB runs as a SELECT on its own tables),
// or a PIVOT without an IN list. It is refused when it names PRAGMA or a
// refused name anywhere.
func checkWords(text string) error {
	found := matches(queryWords, text)
	for _, name := range found {
		if name == "pragma" {
			return apierr.New(apierr.PermissionDenied, "PRAGMA is not available to queries: it shows the server; query a table or a view")
		}
	}
	if len(found) > 0 {
		return refuse("queries", found)
	}
	return nil
}

// writeWords finds a refused name in a mutation; query and query_table,
// common column names, only as calls.
var writeWords = wordsOf(nil, map[string]bool{"query": true, "query_table": true})

// CheckWrite refuses, with permission_denied, the SQL of a mutation that
// names a refused name anywhere: it runs on the db-manager's DuckDB, whose
// settings and paths are the server's, and the views and macros it makes
// run in every query that reads them, where Check does not look. DuckDB
// serializes no mutation, so its words are checked.
func CheckWrite(text string) error {
	if found := matches(writeWords, text); len(found) > 0 {
		return refuse("SQL mutations", found)
	}
	return nil
}

// matches are the names re finds in text, in lower case.
func matches(re *regexp.Regexp, text string) []string {
	var found []string
	for _, m := range re.FindAllStringSubmatch(text, -1) {
		for _, g := range m[1:] {
			if g != "" {
				found = append(found, strings.ToLower(g))
			}
		}
	}
	return found
}
