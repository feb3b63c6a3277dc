package function

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

func restock() *Definition {
	return &Definition{Name: "restock", Kind: KindSQL,
		SQL: "UPDATE stock SET qty = qty + $qty WHERE item = $item",
		Params: []Param{
			{Name: "item", Type: "VARCHAR", Required: true},
			{Name: "qty", Type: "INTEGER", Default: float64(1)},
		}}
}

func describe() *Definition {
	return &Definition{Name: "describe", Kind: KindCompute, Capabilities: []string{"go"}, Handler: "describe",
		Params: []Param{{Name: "table", Type: "VARCHAR", Required: true}},
		Reads:  []string{"other_model"}, Output: &Output{Table: "stats", Mode: ModeReplace},
		DeadlineMS: 60000, MaxAttempts: 3}
}

func TestValidateAccepts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, d := range []*Definition{
		restock(),
		describe(),
		{Name: "many", Kind: KindSQL, SQL: "INSERT INTO t VALUES ($a, $b, $c, $d); DELETE FROM u WHERE x = $a",
			Params: []Param{{Name: "a", Type: "DECIMAL(10,2)"}, {Name: "b", Type: "VARCHAR[]", Default: []any{"x", "y"}},
				{Name: "c", Type: "JSON", Default: map[string]any{"k": 1.0}}, {Name: "d", Type: "TIMESTAMP", Default: "2026-12-01 10:00:00"}}},
		{Name: "make", Kind: KindSQL, SQL: "CREATE TABLE IF NOT EXISTS t (a INTEGER); MERGE INTO t USING (SELECT 1 AS a) s ON t.a = s.a WHEN NOT MATCHED THEN INSERT BY NAME"},
		{Name: "cte", Kind: KindSQL, SQL: "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x"},
		{Name: "quoted", Kind: KindSQL, SQL: "UPDATE t SET note = '$not_a_param' WHERE id = $id", Params: []Param{{Name: "id", Type: "BIGINT"}}},
	} {
		require.NoError(t, Validate(ctx, d), d.Name)
	}
}

func TestValidateRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	cases := []struct {
		name   string
		change func(d *Definition)
		want   string // in the message
	}{
		{"bad name", func(d *Definition) { d.Name = "Restock" }, "name:"},
		{"reserved name", func(d *Definition) { d.Name = "_tt_x" }, "name:"},
		{"kind", func(d *Definition) { d.Kind = "lambda" }, `kind "lambda"`},
		{"param name", func(d *Definition) { d.Params[0].Name = "1item" }, "params[0].name"},
		{"param twice", func(d *Definition) { d.Params[1].Name = "item" }, "params[1] (item): the name is declared twice"},
		{"type unknown", func(d *Definition) { d.Params[0].Type = "STRINGY" }, "params[0] (item).type"},
		{"type injected", func(d *Definition) { d.Params[0].Type = "INTEGER); DROP TABLE stock; --" }, "params[0] (item).type"},
		{"required with default", func(d *Definition) { d.Params[0].Default = "apple" }, "params[0] (item): a required parameter takes no default"},
		{"default not of type", func(d *Definition) { d.Params[1].Default = "many" }, "params[1] (qty).default"},
		{"default object for scalar", func(d *Definition) { d.Params[1].Default = map[string]any{"a": 1.0} }, "params[1] (qty).default"},
		{"sql empty", func(d *Definition) { d.SQL = " " }, "sql:"},
		{"sql does not parse", func(d *Definition) { d.SQL = "UPDATE stock SETT qty = $qty WHERE item = $item" }, "does not parse"},
		{"undeclared", func(d *Definition) { d.SQL += " AND x = $other" }, "$other is not a declared parameter"},
		{"unused", func(d *Definition) { d.SQL = "UPDATE stock SET qty = 0 WHERE item = $item" }, "params (qty): the sql never uses $qty"},
		{"select", func(d *Definition) { d.SQL = "SELECT * FROM stock WHERE item = $item AND qty = $qty" }, "changes nothing"},
		{"attach", func(d *Definition) { d.SQL = "ATTACH '/tmp/x.db' AS x; UPDATE stock SET qty = $qty WHERE item = $item" }, "not allowed"},
		{"copy", func(d *Definition) {
			d.SQL = "COPY stock TO '/tmp/x.csv'; UPDATE stock SET qty = $qty WHERE item = $item"
		}, "not allowed"},
		{"set", func(d *Definition) { d.SQL = "SET threads = 4; UPDATE stock SET qty = $qty WHERE item = $item" }, "not allowed"},
		{"reserved table", func(d *Definition) {
			d.SQL = "DELETE FROM _tt_requests; UPDATE stock SET qty = $qty WHERE item = $item"
		}, "reserved"},
		{"server setting", func(d *Definition) {
			d.SQL = "UPDATE stock SET qty = $qty, item = current_setting('temp_directory') WHERE item = $item"
		}, "current_setting is not available to SQL mutations"},
		{"sql with capabilities", func(d *Definition) { d.Capabilities = []string{"go"} }, "capabilities: not a field of a sql function"},
		{"sql with output", func(d *Definition) { d.Output = &Output{Table: "t", Mode: ModeAppend} }, "output: not a field"},
	}
	for _, c := range cases {
		d := restock()
		c.change(d)
		err := Validate(ctx, d)
		requireInvalid(t, err, c.want, c.name)
	}
	compute := []struct {
		name   string
		change func(d *Definition)
		want   string
	}{
		{"no capabilities", func(d *Definition) { d.Capabilities = nil }, "capabilities: want 1 to 3"},
		{"four capabilities", func(d *Definition) { d.Capabilities = []string{"a", "b", "c", "d"} }, "capabilities: want 1 to 3"},
		{"bad capability", func(d *Definition) { d.Capabilities = []string{"Go"} }, "capabilities[0]"},
		{"duckdb", func(d *Definition) { d.Capabilities = []string{"go", "duckdb"} }, "capabilities[1]: \"duckdb\" is reserved"},
		{"size", func(d *Definition) { d.Capabilities = []string{"size:large"} }, "reserved"},
		{"twice", func(d *Definition) { d.Capabilities = []string{"go", "go"} }, "listed twice"},
		{"no handler", func(d *Definition) { d.Handler = "" }, "handler:"},
		{"bad handler", func(d *Definition) { d.Handler = "a.b" }, "handler:"},
		{"bad read", func(d *Definition) { d.Reads = []string{"a.b"} }, "reads[0]"},
		{"bad output table", func(d *Definition) { d.Output.Table = "_tt_x" }, "output.table"},
		{"bad output mode", func(d *Definition) { d.Output.Mode = "merge" }, `output.mode "merge"`},
		{"negative deadline", func(d *Definition) { d.DeadlineMS = -1 }, "deadline_ms"},
		{"too many attempts", func(d *Definition) { d.MaxAttempts = 11 }, "max_attempts 11"},
		{"negative attempts", func(d *Definition) { d.MaxAttempts = -1 }, "max_attempts -1"},
		{"compute with sql", func(d *Definition) { d.SQL = "DELETE FROM t" }, "sql: not a field of a compute function"},
		{"compute param type", func(d *Definition) { d.Params[0].Type = "NOPE" }, "params[0] (table).type"},
	}
	for _, c := range compute {
		d := describe()
		c.change(d)
		requireInvalid(t, Validate(ctx, d), c.want, c.name)
	}
}

func requireInvalid(t *testing.T, err error, want, name string) {
	t.Helper()
	require.Error(t, err, name)
	code, msg := apierr.From(err)
	require.Equal(t, apierr.InvalidArgument, code, "%s: %v", name, err)
	require.Contains(t, msg, want, name)
}

func TestCheckArgs(t *testing.T) {
	t.Parallel()
	d := restock()
	got, err := CheckArgs(d, map[string]any{"item": "apple"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"item": "apple", "qty": float64(1)}, got)

	got, err = CheckArgs(d, map[string]any{"item": 7.0, "qty": "5"})
	require.NoError(t, err, "a number casts to VARCHAR, a numeric string to INTEGER")
	require.Equal(t, map[string]any{"item": 7.0, "qty": "5"}, got)

	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{}, `parameter "item" (VARCHAR) is required`},
		{map[string]any{"item": "a", "colour": "red"}, `no parameter "colour"`},
		{map[string]any{"item": "a", "qty": "lots"}, `parameter "qty" (INTEGER)`},
		{map[string]any{"item": "a", "qty": []any{1.0}}, `parameter "qty" (INTEGER)`},
		{map[string]any{"item": "a", "qty": 1e20}, `parameter "qty" (INTEGER)`},
	} {
		_, err := CheckArgs(d, c.args)
		requireInvalid(t, err, c.want, c.want)
	}

	typed := &Definition{Name: "typed", Kind: KindSQL, Params: []Param{
		{Name: "tags", Type: "VARCHAR[]"}, {Name: "ids", Type: "INTEGER[]"}, {Name: "doc", Type: "JSON"},
		{Name: "day", Type: "DATE"}, {Name: "ok", Type: "BOOLEAN"},
	}}
	_, err = CheckArgs(typed, map[string]any{"tags": []any{"a", "b"}, "ids": []any{1.0, 2.0}, "doc": map[string]any{"x": []any{1.0}}, "day": "2026-12-02", "ok": true})
	require.NoError(t, err)
	for _, c := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"ids": []any{"one"}}, `parameter "ids" (INTEGER[])`},
		{map[string]any{"ids": "1,2"}, `parameter "ids" (INTEGER[])`},
		{map[string]any{"day": "yesterday"}, `parameter "day" (DATE)`},
		{map[string]any{"ok": "perhaps"}, `parameter "ok" (BOOLEAN)`},
	} {
		_, err := CheckArgs(typed, c.args)
		requireInvalid(t, err, c.want, c.want)
	}
}

func TestBind(t *testing.T) {
	t.Parallel()
	d := restock()
	d.SQL += " AND note <> '$qty'"
	text, values, err := d.Bind(map[string]any{"item": "apple", "qty": 5.0})
	require.NoError(t, err)
	require.Equal(t, "UPDATE stock SET qty = qty + CAST($2 AS INTEGER) WHERE item = CAST($1 AS VARCHAR) AND note <> '$qty'", text)
	require.Equal(t, []any{"apple", int64(5)}, values)

	bad := restock()
	bad.Params[1].Type = "INTEGER) + (SELECT 1"
	_, _, err = bad.Bind(map[string]any{"item": "apple", "qty": 5.0})
	requireInvalid(t, err, `parameter "qty"`, "a type read back from the bucket is checked again")

	l := &Definition{Name: "l", Kind: KindSQL, SQL: "INSERT INTO t VALUES ($v)", Params: []Param{{Name: "v", Type: "VARCHAR[]"}}}
	text, values, err = l.Bind(map[string]any{"v": []any{"a"}})
	require.NoError(t, err)
	require.Equal(t, "INSERT INTO t VALUES (CAST(CAST($1 AS JSON) AS VARCHAR[]))", text)
	require.Equal(t, []any{`["a"]`}, values)
}
