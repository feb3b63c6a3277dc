// Package readguard keeps a read query to the model's data: it refuses a
// query that would show the server under it, that is a path on the node,
// a setting, an environment variable or another database. It decides from
// DuckDB's own parser, so case, quoting, comments and schema prefixes
// change nothing. The SQL of a mutation, which may make views and macros
// that queries run, is refused the same names (CheckWrite), and paths are
// scrubbed from the messages readers get (ScrubPaths).
package readguard

import (
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

// Check refuses, with permission_denied, a read statement that names
// anything in the refused list. One DuckDB reads but will not serialize
// (a PRAGMA, a PIVOT without IN list) is checked by its words. A statement
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
		return refuse("queries", found)
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

// refuse refuses the first of the names found, in what (queries, SQL
// mutations).
func refuse(what string, found []string) error {
	return apierr.Errorf(apierr.PermissionDenied, "%s is not available to %s: it shows %s", found[0], what, refused[found[0]])
}
