package dbmanager_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// register checks and stores d on model, as the gateway does.
func (h *harness) register(t *testing.T, model string, d *function.Definition) {
	t.Helper()
	d.Model = model
	require.NoError(t, function.Validate(testContext(t), d))
	require.NoError(t, function.NewStore(h.functions).Put(testContext(t), d))
}

func callMutation(id, body string) mutation {
	return mutation{op: subject.OpCall, id: id, contentType: subject.ContentJSON, body: []byte(body)}
}

// A call runs its SQL function with the arguments bound as typed
// parameters, in order with the model's other mutations; arguments that do
// not fit the definition fail naming the parameter and change nothing.
func TestCallMutation(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	h.register(t, "m", &function.Definition{Name: "restock", Kind: function.KindSQL,
		SQL: "UPDATE stock SET qty = qty + $qty WHERE item = $item",
		Params: []function.Param{
			{Name: "item", Type: "VARCHAR", Required: true},
			{Name: "qty", Type: "INTEGER", Default: 1.0},
		}})
	h.register(t, "m", &function.Definition{Name: "tag", Kind: function.KindSQL,
		SQL: "UPDATE stock SET tags = $tags, note = $note WHERE item = $item; INSERT INTO log VALUES ($item)",
		Params: []function.Param{
			{Name: "item", Type: "VARCHAR", Required: true},
			{Name: "tags", Type: "VARCHAR[]", Required: true},
			{Name: "note", Type: "JSON"},
		}})
	h.register(t, "m", &function.Definition{Name: "describe", Kind: function.KindCompute,
		Capabilities: []string{"go"}, Handler: "describe"})
	run := h.start(t, l, t.TempDir())

	h.publish(t, "m", sqlMutation("create", `{"sql": "CREATE TABLE stock (item VARCHAR, qty INTEGER, tags VARCHAR[], note JSON); CREATE TABLE log (item VARCHAR)"}`))
	h.publish(t, "m", csvRows("stock", "rows", "item,qty\napple,1\npear,2\n"))
	h.publish(t, "m", callMutation("five", `{"function": "restock", "args": {"item": "apple", "qty": 5}}`))
	h.publish(t, "m", callMutation("five", `{"function": "restock", "args": {"item": "apple", "qty": 5}}`)) // a duplicate
	h.publish(t, "m", callMutation("default", `{"function": "restock", "args": {"item": "pear"}}`))
	h.publish(t, "m", callMutation("as-string", `{"function": "restock", "args": {"item": "pear", "qty": "10"}}`))
	h.publish(t, "m", sqlMutation("after", `{"sql": "UPDATE stock SET qty = qty * 2 WHERE item = 'apple'"}`))
	h.publish(t, "m", callMutation("tags", `{"function": "tag", "args": {"item": "apple", "tags": ["red", "it's"], "note": {"a": [1]}}}`))
	h.publish(t, "m", callMutation("bad-qty", `{"function": "restock", "args": {"item": "apple", "qty": "lots"}}`))
	h.publish(t, "m", callMutation("bad-tags", `{"function": "tag", "args": {"item": "apple", "tags": "red"}}`))
	h.publish(t, "m", callMutation("missing", `{"function": "restock", "args": {"qty": 1}}`))
	h.publish(t, "m", callMutation("undeclared", `{"function": "restock", "args": {"item": "apple", "colour": "red"}}`))
	h.publish(t, "m", callMutation("unknown", `{"function": "nope", "args": {}}`))
	h.publish(t, "m", callMutation("compute", `{"function": "describe"}`))

	got := outcomes.await(t, "create", "rows", "five", "default", "as-string", "after", "tags", "bad-qty", "bad-tags", "missing", "undeclared", "unknown", "compute")
	requireApplied(t, got["five"], 1)
	require.Equal(t, subject.OpCall, got["five"].GetOp())
	requireApplied(t, got["default"], 1)
	requireApplied(t, got["as-string"], 1)
	requireApplied(t, got["tags"], 2)
	for id, param := range map[string]string{"bad-qty": `"qty"`, "bad-tags": `"tags"`, "missing": `"item"`, "undeclared": `"colour"`} {
		requireFailed(t, got[id], "invalid_argument")
		require.Contains(t, got[id].GetError().GetMessage(), param, id)
	}
	requireFailed(t, got["unknown"], "not_found")
	requireFailed(t, got["compute"], "invalid_argument")
	require.Contains(t, got["compute"].GetError().GetMessage(), "compute function")
	require.Len(t, outcomes.byID()["five"], 1, "a call is applied once")

	run.stop(t)
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{`apple|12|red/it's|{"a":[1]}`, "pear|13|NULL|NULL"},
		queryStrings(t, db, "SELECT item, qty, tags[1] || '/' || tags[2], note::VARCHAR FROM stock ORDER BY item"))
	require.Equal(t, []string{"apple"}, queryStrings(t, db, "SELECT * FROM log"))
}

// An append with Tt-Mode: replace deletes the table's rows first, in the
// same transaction; on a missing table it creates it as any append does.
func TestAppendReplace(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	run := h.start(t, l, t.TempDir())

	replace := func(m mutation) mutation { m.mode = "replace"; return m }
	h.publish(t, "m", replace(ndjsonRows("append", "fresh", "create", `{"a":1}`, `{"a":2}`)))
	h.publish(t, "m", ndjsonRows("append", "fresh", "more", `{"a":3}`))
	h.publish(t, "m", replace(ndjsonRows("append", "fresh", "replace", `{"a":4}`)))
	h.publish(t, "m", ndjsonRows("append", "fresh", "after", `{"a":5}`))
	bad := ndjsonRows("append", "fresh", "bad-mode", `{"a":6}`)
	bad.mode = "merge"
	h.publish(t, "m", bad)
	upsert := replace(ndjsonRows("upsert", "fresh", "upsert", `{"a":7}`))
	upsert.key = "a"
	h.publish(t, "m", upsert)
	h.publish(t, "m", replace(ndjsonRows("append", "fresh", "bad-rows", `{"a":"not a number"}`)))

	got := outcomes.await(t, "create", "more", "replace", "after", "bad-mode", "upsert", "bad-rows")
	requireApplied(t, got["create"], 2)
	requireApplied(t, got["replace"], 1)
	requireFailed(t, got["bad-mode"], "invalid_argument")
	requireFailed(t, got["upsert"], "invalid_argument")
	require.Equal(t, "failed", got["bad-rows"].GetStatus())

	run.stop(t)
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{"4", "5"}, queryStrings(t, db, "SELECT a FROM fresh ORDER BY a"), "a failed replace deletes nothing")
}
