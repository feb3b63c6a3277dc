package readguard_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/readguard"
)

func TestCheckRefuses(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"select current_setting('temp_directory')",
		"SELECT Current_Setting('temp_directory')",
		`select "current_setting"('temp_directory')`,
		"select s.current_setting() from (select 'threads' as s)",
		"from duckdb_settings()",
		"from DuckDB_Settings /* a comment */",
		"from system.main.duckdb_settings()",
		"select * from pg_settings",
		"from duckdb_databases()",
		"from duckdb_databases",
		"select path from system.main.duckdb_databases",
		"select getenv('HOME')",
		"select getvariable('x')",
		"from duckdb_variables()",
		"from duckdb_extensions()",
		"from duckdb_secrets()",
		"from which_secret('s3://b/k', 's3')",
		"from duckdb_temporary_files()",
		"from duckdb_memory()",
		"from duckdb_logs()",
		"from pragma_database_size()",
		"from query('select 1')",
		"from query_table('t')",
		"from json_execute_serialized_sql(json_serialize_sql('select 1'))",
		"select * from t where x in (select current_setting('threads'))",
		"with s as (from duckdb_settings()) from s",
		"select list_transform([1], x -> current_setting('threads'))",
		"pragma database_list",
		"PRAGMA database_size",
		"/* x */ pragma show_databases",
		"pragma version",
		"pivot t on i using max(current_setting('threads'))",
	} {
		err := readguard.Check(sql)
		require.Error(t, err, sql)
		code, msg := apierr.From(err)
		require.Equal(t, apierr.PermissionDenied, code, sql)
		require.Contains(t, msg, "not available to queries", sql)
	}
}

func TestCheckNamesTheFunction(t *testing.T) {
	t.Parallel()
	_, msg := apierr.From(readguard.Check("select 1 from t where x = CURRENT_SETTING('threads')"))
	require.Contains(t, msg, "current_setting")
	_, msg = apierr.From(readguard.Check("pragma database_list"))
	require.Contains(t, msg, "PRAGMA")
}

func TestCheckPasses(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"select 1",
		"select i, name from t where i < $1 order by i",
		"select 'current_setting' as word, '-- pragma' as text",
		"select * from information_schema.tables",
		"summarize t",
		"describe t",
		"show tables",
		"pivot t on i",
		"from (select 1 as query) q",
		"select version()",
		// DuckDB reports these when it runs them.
		"selec 1",
		"select * from read_csv('/etc/passwd')",
	} {
		require.NoError(t, readguard.Check(sql), sql)
	}
}

func TestScrubPaths(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		`Permission Error: Cannot access file "/etc/passwd" - file system operations are disabled by configuration`: `Permission Error: Cannot access file "<path>" - file system operations are disabled by configuration`,
		`Cannot access directory "/root/.duckdb/extensions/v1.5.6/linux_amd64" - disabled`:                          `Cannot access directory "<path>" - disabled`,
		`IO Error: Could not open "/var/lib/teatree/my data/m/v1/model.duckdb"`:                                     `IO Error: Could not open "<path>"`,
		`open /var/lib/teatree/cache/m/v1/model.duckdb: no such file or directory`:                                  `open <path>: no such file or directory`,
		`files in '/tmp/x.csv' and (/tmp/y)`:                                                                        `files in '<path>' and (<path>)`,
		`secret_directory=~/.duckdb/stored_secrets`:                                                                 `secret_directory=<path>`,
		"/data/x failed": "<path> failed",
		`Binder Error: a/b and 1/2 are not paths; "x" is a name`:                 `Binder Error: a/b and 1/2 are not paths; "x" is a name`,
		"LINE 1: select * from read_csv('/etc/passwd')\n                      ^": "LINE 1: select * from read_csv('<path>')\n                      ^",
	}
	for in, want := range cases {
		require.Equal(t, want, readguard.ScrubPaths(in), in)
	}
}

func TestCheckWrite(t *testing.T) {
	t.Parallel()
	for _, sql := range []string{
		"create view v as select * from duckdb_settings()",
		"CREATE MACRO leak() AS Current_Setting('temp_directory')",
		"create table x as select path from duckdb_databases",
		"insert into t select value from pg_settings",
		"update t set name = getenv('HOME')",
		"create view v as from query('select 1')",
		"create view v as from query /* a /* nested */ comment */ ('select 1')",
		"create view v as from QUERY_TABLE\n('t')",
	} {
		err := readguard.CheckWrite(sql)
		require.Error(t, err, sql)
		code, msg := apierr.From(err)
		require.Equal(t, apierr.PermissionDenied, code, sql)
		require.Contains(t, msg, "not available to SQL mutations", sql)
	}
	for _, sql := range []string{
		"create table log (query varchar, query_table varchar)",
		"insert into log (query) values ('select 1')",
		"update log set query = query || ';'",
		"create view v as select query, count(*) from log group by query",
	} {
		require.NoError(t, readguard.CheckWrite(sql), sql)
	}
}
