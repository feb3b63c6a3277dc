// Package readguard keeps a read query to the model's data: it refuses a
// query that would show the server under it, that is a path on the node,
// a setting, an environment variable or another database. It decides from
// DuckDB's own parser, so case, quoting, comments and schema prefixes
// change nothing.
package readguard

import (
	"regexp"
	"sort"
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// refused are the names a query may not call or read, as a function, a
// table function or a view, with what each would show. DuckDB's file
// readers (read_csv, glob, ...) are not here: a version is opened with
// external access off, which refuses them already.
var refused = map[string]string{
	// Settings: temp_directory, secret_directory, allowed_paths and
	// allowed_directories name the node's paths.
	"current_setting":  "the server's settings",
	"duckdb_settings":  "the server's settings",
	"pg_settings":      "the server's settings",
	"getvariable":      "the server's variables",
	"duckdb_variables": "the server's variables",
	// DuckDB has getenv only in its shell; refused should a build have it.
	"getenv": "the server's environment",
	// Databases and the files behind them.
	"duckdb_databases":       "the paths of the server's databases",
	"pragma_database_size":   "the server's memory limit",
	"duckdb_temporary_files": "the server's temporary files",
	"duckdb_extensions":      "the server's extension directory",
	"duckdb_secrets":         "the server's secrets",
	"which_secret":           "the server's secrets",
	"duckdb_memory":          "the server's memory",
	"duckdb_logs":            "the server's logs",
	"duckdb_log_contexts":    "the server's logs",
	// Functions that run SQL given as text, which no parse of the query
	// can check.
	"query":                       "SQL given as text",
	"query_table":                 "SQL given as text",
	"json_execute_serialized_sql": "SQL given as text",
}

// Check refuses, with permission_denied, a statement that names anything
// in the refused list or is not a SELECT to DuckDB's parser. A statement
// DuckDB cannot parse passes: running it reports the syntax error.
func Check(text string) error {
	tree, err := parse(text)
	if err != nil {
		return err
	}
	switch {
	case tree.Error && tree.ErrorType == "parser":
		return nil
	case tree.Error:
		return checkWords(text)
	}
	var found []string
	walk(tree.Statements, func(name string) {
		if _, ok := refused[strings.ToLower(name)]; ok {
			found = append(found, strings.ToLower(name))
		}
	})
	if len(found) > 0 {
		return refuse(found)
	}
	return nil
}

// walk calls name with every function, table function, table and view
// that a serialized statement names, at any depth (subqueries, CTEs,
// lambdas, SHOW and SUMMARIZE).
func walk(node any, name func(string)) {
	switch n := node.(type) {
	case map[string]any:
		for _, key := range []string{"function_name", "table_name"} {
			if s, ok := n[key].(string); ok && s != "" {
				name(s)
			}
		}
		for _, v := range n {
			walk(v, name)
		}
	case []any:
		for _, v := range n {
			walk(v, name)
		}
	}
}

// word finds a refused name, or PRAGMA, as a word anywhere in a text.
var word = func() *regexp.Regexp {
	names := []string{"pragma"}
	for n := range refused {
		names = append(names, n)
	}
	sort.Strings(names)
	return regexp.MustCompile(`(?i)(?:^|[^a-z0-9_$])(` + strings.Join(names, "|") + `)(?:[^a-z0-9_$]|$)`)
}()

// checkWords checks a statement that DuckDB's parser reads but will not
// serialize: a PRAGMA (which DuckDB runs as a SELECT on its own tables),
// or a PIVOT without an IN list. It is refused when it names PRAGMA or a
// refused name anywhere, in a string or a comment too.
func checkWords(text string) error {
	m := word.FindAllStringSubmatch(text, -1)
	if len(m) == 0 {
		return nil
	}
	found := make([]string, len(m))
	for i, s := range m {
		found[i] = strings.ToLower(s[1])
		if found[i] == "pragma" {
			return apierr.New(apierr.PermissionDenied, "PRAGMA is not available to queries: it shows the server; query a table or a view")
		}
	}
	return refuse(found)
}

func refuse(found []string) error {
	return apierr.Errorf(apierr.PermissionDenied, "%s is not available to queries: it shows %s", found[0], refused[found[0]])
}
