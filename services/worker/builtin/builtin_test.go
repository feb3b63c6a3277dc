package builtin_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/pkg/worker/workertest"
	"github.com/teatree-dev/teatree/services/worker/builtin"
)

func TestBuiltins(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	e.Start(t, worker.Config{ID: "w-1", Handlers: builtin.Handlers()})

	describe := e.Job("d1", "describe", map[string]any{"table": "orders"}, 3)
	sample := e.Job("s1", "sample", map[string]any{"table": "orders", "n": 3.0}, 3)
	sampleAll := e.Job("s2", "sample", map[string]any{"table": "orders"}, 3)
	query := e.Job("q1", "sql_to_table", map[string]any{"sql": "SELECT item, amount FROM orders WHERE id > 3"}, 3)
	e.Queue(t, describe)
	e.Queue(t, sample)
	e.Queue(t, sampleAll)
	e.Queue(t, query)

	evs.WaitFor(t, "d1", "sales.d1.1.done")
	rows, cols := workertest.ReadArrow(t, strings.TrimPrefix(describe.Results[0].URL, "file://"))
	require.EqualValues(t, 3, rows, "one row a column")
	require.Equal(t, []string{"column_name", "column_type", "min", "max", "approx_unique", "avg", "std",
		"q25", "q50", "q75", "count", "null_percentage"}, cols)
	progress := evs.WaitFor(t, "d1", "sales.d1.1.progress.1")
	require.Equal(t, "0 of 3 columns", progress.Message)

	evs.WaitFor(t, "s1", "sales.s1.1.done")
	rows, cols = workertest.ReadArrow(t, strings.TrimPrefix(sample.Results[0].URL, "file://"))
	require.EqualValues(t, 3, rows)
	require.Equal(t, []string{"id", "item", "amount"}, cols)
	evs.WaitFor(t, "s2", "sales.s2.1.done")
	rows, _ = workertest.ReadArrow(t, strings.TrimPrefix(sampleAll.Results[0].URL, "file://"))
	require.EqualValues(t, 5, rows, "n defaults to 10: every one of 5 rows")

	done := evs.WaitFor(t, "q1", "sales.q1.1.done")
	require.EqualValues(t, 2, done.Rows)
	rows, cols = workertest.ReadArrow(t, strings.TrimPrefix(query.Results[0].URL, "file://"))
	require.EqualValues(t, 2, rows)
	require.Equal(t, []string{"item", "amount"}, cols)
}

func TestBuiltinsRefuseBadArguments(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	e.Start(t, worker.Config{ID: "w-1", Handlers: builtin.Handlers()})
	for _, c := range []struct {
		id, handler string
		args        map[string]any
	}{
		{"b1", "describe", map[string]any{}},
		{"b2", "describe", map[string]any{"table": "nope"}},
		{"b3", "sample", map[string]any{"table": "orders", "n": 0.0}},
		{"b4", "sample", map[string]any{"table": "orders", "n": "ten"}},
		{"b5", "sql_to_table", map[string]any{"sql": "DELETE FROM orders"}},
		{"b6", "sql_to_table", map[string]any{"sql": "SELECT 1; SELECT 2"}},
		{"b9", "sql_to_table", map[string]any{"sql": "CREATE TABLE memory.main.t (a INT); SELECT 2"}},
		{"b7", "sql_to_table", map[string]any{"sql": "SELEC nothing"}},
		{"b8", "sql_to_table", map[string]any{"sql": "CREATE TABLE memory.main.t AS SELECT 1"}},
	} {
		e.Queue(t, e.Job(c.id, c.handler, c.args, 3))
		failed := evs.WaitFor(t, c.id, "sales."+c.id+".1.failed")
		require.True(t, failed.Final, "%s: %+v", c.id, failed.Error)
		require.Equal(t, "invalid_argument", failed.Error.Code, "%s: %s", c.id, failed.Error.Message)
		body, _ := json.Marshal(failed.Error)
		t.Logf("%s %s: %s", c.id, c.handler, body)
	}
	_, err := os.Stat(e.Blobs + "/calls")
	require.True(t, os.IsNotExist(err), "no result is written")
}

// TestSQLToTableSeesNoServer: sql_to_table runs on the worker's DuckDB, so
// it refuses what would show the worker's settings and files, like a query.
func TestSQLToTableSeesNoServer(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	e.Start(t, worker.Config{ID: "w-1", Handlers: builtin.Handlers()})
	for _, c := range []struct{ id, sql, says string }{
		{"l1", "SELECT current_setting('temp_directory')", "current_setting"},
		{"l2", "FROM duckdb_databases()", "duckdb_databases"},
		{"l3", "PRAGMA database_list", "PRAGMA"},
		{"l4", "FROM query('SELECT * FROM duckdb_settings()')", "query"},
	} {
		e.Queue(t, e.Job(c.id, "sql_to_table", map[string]any{"sql": c.sql}, 3))
		failed := evs.WaitFor(t, c.id, "sales."+c.id+".1.failed")
		require.True(t, failed.Final, "retrying cannot help: %s", c.id)
		require.Equal(t, "permission_denied", failed.Error.Code, "%s: %s", c.id, failed.Error.Message)
		require.Contains(t, failed.Error.Message, c.says)
	}
	q := e.Job("l5", "sql_to_table", map[string]any{"sql": "SELECT count(*) AS n FROM orders"}, 3)
	e.Queue(t, q)
	done := evs.WaitFor(t, "l5", "sales.l5.1.done")
	require.EqualValues(t, 1, done.Rows)

	// The worker's files are out of reach, and a path in an error is not
	// shown.
	e.Queue(t, e.Job("l6", "sql_to_table", map[string]any{"sql": "SELECT * FROM read_csv('/etc/passwd')"}, 3))
	failed := evs.WaitFor(t, "l6", "sales.l6.1.failed")
	require.Equal(t, "invalid_argument", failed.Error.Code, failed.Error.Message)
	require.Contains(t, failed.Error.Message, "Permission Error")
	require.Contains(t, failed.Error.Message, `"<path>"`)
	require.NotContains(t, failed.Error.Message, "/etc/passwd")
}
