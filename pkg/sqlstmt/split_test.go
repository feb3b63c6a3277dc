package sqlstmt

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSplitStatements(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want []Statement
	}{
		{"select 1", []Statement{{Text: "select 1"}}},
		{" ; select 1;; select 2 ; ", []Statement{{Text: "select 1"}, {Text: "select 2"}}},
		{"select ';' ; select \"a;b\"", []Statement{{Text: "select ';'"}, {Text: "select \"a;b\""}}},
		{"select 'it''s;' ; x", []Statement{{Text: "select 'it''s;'"}, {Text: "x"}}},
		{"select 1 -- c;\n; select 2", []Statement{{Text: "select 1 -- c;"}, {Text: "select 2"}}},
		{"select /* ; */ 1", []Statement{{Text: "select /* ; */ 1"}}},
		{"select $tag$ ; $tag$, $$;$$", []Statement{{Text: "select $tag$ ; $tag$, $$;$$"}}},
		{"update t set a = $1 where b = $3; delete from t where c = $2 or d = $2",
			[]Statement{{Text: "update t set a = $1 where b = $2", Params: []int{1, 3}}, {Text: "delete from t where c = $1 or d = $1", Params: []int{2}}}},
		{"select '$1', $2", []Statement{{Text: "select '$1', $1", Params: []int{2}}}},
		{"select 'unterminated;", []Statement{{Text: "select 'unterminated;"}}},
		// Comments alone are no statement: DuckDB would call them an empty query.
		{"-- only a comment", nil},
		{"select 1; /* c */ ; -- d\n", []Statement{{Text: "select 1"}}},
	}
	for _, c := range cases {
		require.Equal(t, c.want, Split(c.in), c.in)
	}
}

func TestNamed(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"update s set q = q + $qty where item = $item": "update s set q = q + <qty> where item = <item>",
		"select '$qty', \"$a\", $1 -- $b\n, $c":        "select '$qty', \"$a\", $1 -- $b\n, <c>",
		"select $t$ $x $t$, /* $y */ $z_1":             "select $t$ $x $t$, /* $y */ <z_1>",
	}
	for in, want := range cases {
		require.Equal(t, want, Named(in, func(n string) string { return "<" + n + ">" }), in)
	}
}
