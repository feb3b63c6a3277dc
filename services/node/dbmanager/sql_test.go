package dbmanager_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// The sql op runs several statements with the request's parameters, in the
// model's write transaction; what could break the transaction or reach
// outside the model is refused, and a refused request changes nothing.
func TestSQLMutation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	run := h.start(t, l, t.TempDir())

	h.publish(t, "m", sqlMutation("create", `{"sql": "CREATE TABLE t (a BIGINT, b VARCHAR); INSERT INTO t (a) VALUES ($1); UPDATE t SET b = $2 WHERE a = $1", "params": [7, "x"]}`))
	h.publish(t, "m", csvRows("t", "append", "a,b\n8,y\n"))
	h.publish(t, "m", sqlMutation("question-marks", `{"sql": "INSERT INTO t VALUES (?, ?)", "params": [9, "z"]}`))
	h.publish(t, "m", sqlMutation("too-few-params", `{"sql": "INSERT INTO t VALUES ($1, $2); DELETE FROM t WHERE a = $3", "params": [1, "one"]}`))
	h.publish(t, "m", sqlMutation("not-json", `INSERT INTO t VALUES (1, 'one')`))
	h.publish(t, "m", sqlMutation("no-statement", `{"sql": " ; -- nothing\n"}`))
	h.publish(t, "m", sqlMutation("bad-sql", `{"sql": "INSERT INTO t VALUES (1, 'one'); SELEC 1"}`))
	forbidden := []string{
		"ATTACH ':memory:' AS other",
		"COPY t TO 'out.csv'",
		"SELECT * FROM read_csv('/etc/passwd')",
		"SET threads = 1",
		"BEGIN TRANSACTION",
		"COMMIT",
		"CHECKPOINT",
		"LOAD httpfs",
		"INSTALL httpfs",
		"EXPORT DATABASE 'out'",
		"DETACH m",
		"DELETE FROM _tt_requests",
		"UPDATE _TT_STATE SET applied_seq = 0",
		"CALL pragma_version()",
		"USE memory",
		// The server's settings and paths, into the model or into what
		// its readers run.
		"CREATE TABLE leak AS SELECT current_setting('temp_directory') AS dir",
		"INSERT INTO t SELECT 1, path FROM duckdb_databases()",
		"CREATE VIEW leak AS SELECT * FROM duckdb_settings()",
		"CREATE MACRO leak() AS current_setting('temp_directory')",
		"CREATE VIEW leak AS FROM query('SELECT 1')",
	}
	var forbiddenIDs []string
	for i, s := range forbidden {
		id := fmt.Sprintf("forbidden-%d", i)
		forbiddenIDs = append(forbiddenIDs, id)
		// The insert before the forbidden statement is undone with it.
		h.publish(t, "m", sqlMutation(id, fmt.Sprintf(`{"sql": "INSERT INTO t VALUES (%d, 'undone'); %s"}`, 100+i, s)))
	}
	// Statements that change nothing are a mistake, not an attempt: a
	// query is the place for them.
	changeNothing := []string{
		"SELECT 1",
		"SELECT * FROM t",
		"PRAGMA enable_profiling",
		"PRAGMA force_checkpoint",
		"PRAGMA table_info('t')",
	}
	var changeNothingIDs []string
	for i, s := range changeNothing {
		id := fmt.Sprintf("changes-nothing-%d", i)
		changeNothingIDs = append(changeNothingIDs, id)
		h.publish(t, "m", sqlMutation(id, fmt.Sprintf(`{"sql": "INSERT INTO t VALUES (%d, 'undone'); %s"}`, 400+i, s)))
	}
	// Texts that the splitter and DuckDB's parser split differently:
	// DuckDB would run the hidden middle statement before teatree checks.
	hidden := []string{
		`SELECT E'\'' AS a; COMMIT; SELECT 1 AS b -- '`,
		`SELECT 1 AS a$b$; ATTACH ':memory:' AS side; SELECT 2 AS c$b$`,
		`/* /* */ ' */ SELECT 1; INSERT INTO t VALUES (200, 'hidden'); SELECT 2 /* ' */`,
		"SELECT 1 -- c\r; INSERT INTO t VALUES (201, 'hidden');\n SELECT 2",
	}
	var hiddenIDs []string
	for i, s := range hidden {
		id := fmt.Sprintf("hidden-%d", i)
		hiddenIDs = append(hiddenIDs, id)
		body, err := json.Marshal(map[string]string{"sql": "INSERT INTO t VALUES (300, 'undone'); " + s})
		require.NoError(t, err)
		h.publish(t, "m", sqlMutation(id, string(body)))
	}
	h.publish(t, "m", sqlMutation("last", `{"sql": "DELETE FROM t WHERE a = $1", "params": [9]}`))

	want := []string{"create", "append", "question-marks", "too-few-params", "not-json", "no-statement", "bad-sql", "last"}
	got := outcomes.await(t, append(append(append(want, forbiddenIDs...), hiddenIDs...), changeNothingIDs...)...)
	requireApplied(t, got["create"], 2)
	requireApplied(t, got["append"], 1)
	requireApplied(t, got["question-marks"], 1)
	requireFailed(t, got["too-few-params"], "invalid_argument")
	require.Contains(t, got["too-few-params"].GetError().GetMessage(), "$3")
	requireFailed(t, got["not-json"], "invalid_argument")
	requireFailed(t, got["no-statement"], "invalid_argument")
	requireFailed(t, got["bad-sql"], "sql_error")
	for i, id := range forbiddenIDs {
		assert.Equal(t, "failed", got[id].GetStatus(), "%s was run", forbidden[i])
		assert.Equal(t, "permission_denied", got[id].GetError().GetCode(), "%s: %s", forbidden[i], got[id].GetError().GetMessage())
	}
	for i, id := range changeNothingIDs {
		assert.Equal(t, "failed", got[id].GetStatus(), "%s was run", changeNothing[i])
		assert.Equal(t, "invalid_argument", got[id].GetError().GetCode(), "%s: %s", changeNothing[i], got[id].GetError().GetMessage())
		assert.Contains(t, got[id].GetError().GetMessage(), "changes nothing", changeNothing[i])
	}
	for i, id := range hiddenIDs {
		assert.Equal(t, "failed", got[id].GetStatus(), "%s was run", hidden[i])
		assert.Equal(t, "invalid_argument", got[id].GetError().GetCode(), "%s: %s", hidden[i], got[id].GetError().GetMessage())
	}
	requireApplied(t, got["last"], 1)

	run.stop(t)
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{"7|x", "8|y"}, queryStrings(t, db, "SELECT * FROM t ORDER BY a"))
}

// A small append does not describe its table every time: the db-manager
// remembers the columns, and forgets them whenever a table may change. An
// append after a sql mutation that added a column or dropped the table sees
// the table as it is then, in the same batch or a later one.
func TestAppendSeesSchemaChangedBySQL(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	run := h.start(t, l, t.TempDir())

	h.publish(t, "m", ndjsonRows("append", "t", "first", `{"a":1}`))
	requireApplied(t, outcomes.await(t, "first")["first"], 1)
	h.publish(t, "m", ndjsonRows("append", "t", "again", `{"a":2}`))
	h.publish(t, "m", sqlMutation("alter", `{"sql": "ALTER TABLE t ADD COLUMN b BIGINT"}`))
	h.publish(t, "m", ndjsonRows("append", "t", "with-b", `{"a":3,"b":4}`))
	h.publish(t, "m", sqlMutation("drop", `{"sql": "DROP TABLE t"}`))
	h.publish(t, "m", ndjsonRows("append", "t", "recreate", `{"c":"x"}`))
	got := outcomes.await(t, "again", "alter", "with-b", "drop", "recreate")
	requireApplied(t, got["again"], 1)
	requireApplied(t, got["with-b"], 1)
	requireApplied(t, got["recreate"], 1)
	// A column the table does not have is still refused.
	h.publish(t, "m", ndjsonRows("append", "t", "unknown", `{"c":"y","d":1}`))
	requireFailed(t, outcomes.await(t, "unknown")["unknown"], "schema_mismatch")
	require.NoError(t, run.stop(t))
}
