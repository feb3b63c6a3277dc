package main

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/function"
)

func TestParseParam(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]function.Param{
		"item:VARCHAR":           {Name: "item", Type: "VARCHAR"},
		"item:VARCHAR:required":  {Name: "item", Type: "VARCHAR", Required: true},
		"qty:INTEGER=1":          {Name: "qty", Type: "INTEGER", Default: 1.0},
		"tags:VARCHAR[]=[\"a\"]": {Name: "tags", Type: "VARCHAR[]", Default: []any{"a"}},
		"note:VARCHAR=hello":     {Name: "note", Type: "VARCHAR", Default: "hello"},
		"p:DECIMAL(10,2)=1.5":    {Name: "p", Type: "DECIMAL(10,2)", Default: 1.5},
	} {
		got, err := parseParam(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"item", ":VARCHAR", "item:", "=1"} {
		_, err := parseParam(in)
		require.Error(t, err, in)
	}
}

func TestDefinitionFlags(t *testing.T) {
	t.Parallel()
	b, err := definition("", "DELETE FROM t WHERE a = $a", []string{"a:INTEGER:required"})
	require.NoError(t, err)
	require.JSONEq(t, `{"kind":"sql","sql":"DELETE FROM t WHERE a = $a","params":[{"name":"a","type":"INTEGER","required":true}]}`, string(b))
	_, err = definition("def.json", "DELETE FROM t", nil)
	require.ErrorContains(t, err, "not both")
	_, err = definition("", "", nil)
	require.ErrorContains(t, err, "--file")
}
