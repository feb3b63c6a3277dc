package dbmanager

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []statement
	}{
		{"select 1", []statement{{text: "select 1"}}},
		{" ; select 1;; select 2 ; ", []statement{{text: "select 1"}, {text: "select 2"}}},
		{"select ';' ; select \"a;b\"", []statement{{text: "select ';'"}, {text: "select \"a;b\""}}},
		{"select 'it''s;' ; x", []statement{{text: "select 'it''s;'"}, {text: "x"}}},
		{"select 1 -- c;\n; select 2", []statement{{text: "select 1 -- c;"}, {text: "select 2"}}},
		{"select /* ; */ 1", []statement{{text: "select /* ; */ 1"}}},
		{"select $tag$ ; $tag$, $$;$$", []statement{{text: "select $tag$ ; $tag$, $$;$$"}}},
		{"update t set a = $1 where b = $3; delete from t where c = $2 or d = $2",
			[]statement{{text: "update t set a = $1 where b = $2", params: []int{1, 3}}, {text: "delete from t where c = $1 or d = $1", params: []int{2}}}},
		{"select '$1', $2", []statement{{text: "select '$1', $1", params: []int{2}}}},
		{"select 'unterminated;", []statement{{text: "select 'unterminated;"}}},
		// Comments alone are no statement: DuckDB would call them an empty query.
		{"-- only a comment", nil},
		{"select 1; /* c */ ; -- d\n", []statement{{text: "select 1"}}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, splitStatements(c.in), c.in)
	}
}
