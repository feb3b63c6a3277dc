package statements_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/sqlstmt"
	"github.com/teatree-dev/teatree/pkg/statements"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	got, err := statements.Split("update t set a = $2; select 'x;y' from t -- c")
	require.NoError(t, err)
	require.Equal(t, []sqlstmt.Statement{
		{Text: "update t set a = $1", Params: []int{2}},
		{Text: "select 'x;y' from t -- c"},
	}, got)
}

// TestHiddenStatements: texts that the splitter and DuckDB's parser read
// differently are refused before anything could run.
func TestHiddenStatements(t *testing.T) {
	t.Parallel()
	for _, text := range []string{
		`SELECT E'\'' AS a; COMMIT; SELECT 1 AS b -- '`,
		`SELECT 1 AS a$b$; ATTACH ':memory:' AS side; SELECT 2 AS c$b$`,
		`/* /* */ ' */ SELECT 1; INSERT INTO t VALUES (200, 'hidden'); SELECT 2 /* ' */`,
		"SELECT 1 -- c\r; INSERT INTO t VALUES (201, 'hidden');\n SELECT 2",
	} {
		_, err := statements.Split(text)
		require.Error(t, err, text)
		code, _ := apierr.From(err)
		require.Equal(t, apierr.InvalidArgument, code, text)
	}
}
