// Package builtin holds the handlers every teatree worker binary serves:
// describe, sample and sql_to_table, each on the job's input version.
package builtin

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/readguard"
	"github.com/teatree-dev/teatree/pkg/statements"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/worker"
)

// Handlers are the built-in handlers by name.
func Handlers() map[string]worker.Handler {
	return map[string]worker.Handler{
		"describe":     Describe,
		"sample":       Sample,
		"sql_to_table": SQLToTable,
	}
}

// Default and bound of sample's n.
const (
	DefaultSampleRows = 10
	MaxSampleRows     = 1_000_000
)

// Sample answers n random rows of a table (args: table, n default 10).
func Sample(ctx context.Context, in *worker.Input) (worker.Output, error) {
	table, err := tableArg(ctx, in)
	if err != nil {
		return worker.Output{}, err
	}
	n, err := intArg(in.Args, "n", DefaultSampleRows)
	if err != nil {
		return worker.Output{}, err
	}
	if n < 1 || n > MaxSampleRows {
		return worker.Output{}, apierr.Errorf(apierr.InvalidArgument, "argument n %d: want 1 to %d", n, MaxSampleRows)
	}
	rd, err := in.Query(ctx, fmt.Sprintf(`SELECT * FROM %s USING SAMPLE reservoir(%d ROWS)`, quote(table), n))
	if err != nil {
		return worker.Output{}, err
	}
	return worker.Arrow(rd), nil
}

// SQLToTable answers a read query on the version (args: sql); anything
// but one read statement is invalid_argument.
func SQLToTable(ctx context.Context, in *worker.Input) (worker.Output, error) {
	q, ok := in.Args["sql"].(string)
	if !ok || q == "" {
		return worker.Output{}, apierr.New(apierr.InvalidArgument, "argument sql: a query is required")
	}
	// DuckDB runs every statement of a text but the last while it
	// prepares it: only one may reach Query, which checks its type.
	stmts, err := statements.Split(q)
	if err != nil {
		return worker.Output{}, err
	}
	if len(stmts) != 1 {
		return worker.Output{}, apierr.Errorf(apierr.InvalidArgument, "argument sql: exactly one statement, not %d", len(stmts))
	}
	// The job's DuckDB is the worker's: its settings, its attached files
	// and their paths, and the worker's file system are the server's, not
	// the caller's. The versions are attached already; with external
	// access off they stay readable and nothing else is (nor can the
	// setting be changed back: it is locked).
	if err := readguard.Check(stmts[0].Text); err != nil {
		return worker.Output{}, err
	}
	if _, err := in.DB.ExecContext(ctx, "SET enable_external_access = false; SET lock_configuration = true"); err != nil {
		return worker.Output{}, fmt.Errorf("close the job's DuckDB to the file system: %w", err)
	}
	rd, err := in.Query(ctx, stmts[0].Text)
	if err != nil {
		code, msg := apierr.From(err)
		return worker.Output{}, apierr.New(code, readguard.ScrubPaths(msg))
	}
	return worker.Arrow(rd), nil
}

// tableArg is the table argument, checked against the rule of table
// names and the version's tables.
func tableArg(ctx context.Context, in *worker.Input) (string, error) {
	table, ok := in.Args["table"].(string)
	if !ok {
		return "", apierr.New(apierr.InvalidArgument, "argument table: a table name is required")
	}
	if err := subject.ValidateTable(table); err != nil {
		return "", err
	}
	var n int
	// information_schema lists views too: a handler run directly (see
	// worker.Direct) may be given a view over a Parquet file.
	err := in.DB.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.tables WHERE table_catalog = ? AND table_schema = 'main' AND table_name = ?`,
		worker.InputSchema, table).Scan(&n)
	if err != nil {
		return "", fmt.Errorf("look table %s up: %w", table, err)
	}
	if n == 0 {
		return "", apierr.Errorf(apierr.InvalidArgument, "argument table: version %d of model %s has no table %q",
			in.Job.Input.Version, in.Job.Input.Model, table)
	}
	return table, nil
}

// intArg is an integer argument; JSON numbers arrive as float64.
func intArg(args map[string]any, name string, def int) (int, error) {
	v, ok := args[name]
	if !ok || v == nil {
		return def, nil
	}
	f, ok := v.(float64)
	if !ok || f != math.Trunc(f) || math.Abs(f) > math.MaxInt32 {
		return 0, apierr.Errorf(apierr.InvalidArgument, "argument %s %v: want an integer", name, v)
	}
	return int(f), nil
}

func quote(ident string) string { return `"` + strings.ReplaceAll(ident, `"`, `""`) + `"` }
