package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/wire"
	"github.com/teatree-dev/teatree/services/node/query"
)

// TestLeaks: no query shows the server under the model. Each is refused
// with permission_denied naming what it used, and the executor answers
// the next query.
func TestLeaks(t *testing.T) {
	t.Parallel()
	e := start(t, 10, query.Config{})
	cases := []struct{ sql, says string }{
		{"select current_setting('temp_directory')", "current_setting"},
		{"SELECT Current_Setting('secret_directory') -- a comment", "current_setting"},
		{`select "current_setting"('allowed_paths')`, "current_setting"},
		{"from duckdb_settings()", "duckdb_settings"},
		{"from /* a comment */ DUCKDB_SETTINGS()", "duckdb_settings"},
		{"select * from pg_settings", "pg_settings"},
		{"from duckdb_databases()", "duckdb_databases"},
		{"select path from system.main.duckdb_databases", "duckdb_databases"},
		{"pragma database_list", "PRAGMA"},
		{"pragma show_databases", "PRAGMA"},
		{"PRAGMA database_size", "PRAGMA"},
		{"select * from pragma_database_size()", "pragma_database_size"},
		{"select getenv('HOME')", "getenv"},
		{"from duckdb_extensions()", "duckdb_extensions"},
		{"from duckdb_secrets()", "duckdb_secrets"},
		{"from duckdb_temporary_files()", "duckdb_temporary_files"},
		{"from duckdb_memory()", "duckdb_memory"},
		{"from query('select current_setting(''temp_directory'')')", "query"},
		{"from query_table('duckdb_databases')", "query_table"},
		{"select i from t where name = (select current_setting('temp_directory'))", "current_setting"},
		{"checkpoint", "read statement"},
	}
	for _, c := range cases {
		body, err := json.Marshal(map[string]any{"sql": c.sql})
		require.NoError(t, err)
		msg := e.query(t, string(body))
		requireFailed(t, msg, "permission_denied")
		require.Contains(t, string(msg.Data), c.says, c.sql)
		msg = e.query(t, `{"sql":"select count(*) as n from t"}`)
		require.JSONEq(t, `[{"n":10}]`, string(msg.Data), "after %s", c.sql)
	}
}

// TestErrorPathsScrubbed: a path in an error becomes <path>, the node's
// own (its cache of versions) as much as one the query named.
func TestErrorPathsScrubbed(t *testing.T) {
	t.Parallel()
	e := start(t, 1, query.Config{})
	ctx := context.Background()

	msg := e.query(t, `{"sql":"from glob('/*')"}`)
	requireFailed(t, msg, "permission_denied")
	require.Contains(t, string(msg.Data), `\"<path>\"`)
	require.NotContains(t, string(msg.Data), `/*`)

	// Version 2 is no DuckDB file: opening it fails, naming its file in
	// the node's cache.
	_, err := e.blobs.Put(ctx, blob.Key("m", 2, blob.DuckDBFile), bytes.NewReader(bytes.Repeat([]byte("not duckdb "), 1000)))
	require.NoError(t, err)
	spec, rev, err := catalog.GetModel(ctx, e.models, "m")
	require.NoError(t, err)
	spec.Version = 2
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = e.models.Update(ctx, "m", b, rev)
	require.NoError(t, err)
	msg = e.query(t, `{"sql":"select 1","version":2}`)
	requireFailed(t, msg, "internal")
	require.NotContains(t, string(msg.Data), e.cacheDir)
	require.Contains(t, string(msg.Data), "<path>")

	msg = e.query(t, `{"sql":"select count(*) as n from t","version":1}`)
	require.JSONEq(t, `[{"n":1}]`, string(msg.Data))
}
