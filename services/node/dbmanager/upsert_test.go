package dbmanager_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func upsertRows(table, key, id string, lines ...string) mutation {
	m := ndjsonRows(subject.OpUpsert, table, id, lines...)
	m.key = key
	return m
}

// An upsert creates its table, replaces the rows whose key exists (one or
// more key columns) and inserts the others; a new column is refused unless
// the model allows new columns.
func TestUpsert(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	strict := h.createModel(t, &teatreev1.ModelSpec{Id: "strict"})
	open := h.createModel(t, &teatreev1.ModelSpec{Id: "open", AllowNewColumns: true})
	strictOutcomes := h.watchOutcomes(t, "strict")
	openOutcomes := h.watchOutcomes(t, "open")
	strictRun := h.start(t, strict, t.TempDir())
	openRun := h.start(t, open, t.TempDir())

	for _, m := range []mutation{
		upsertRows("items", "id", "create", `{"id": 1, "name": "a", "qty": 10}`, `{"id": 2, "name": "b", "qty": 20}`),
		upsertRows("items", "id", "replace", `{"id": 2, "name": "B", "qty": 21}`, `{"id": 3, "name": "c", "qty": 30}`),
		{op: subject.OpUpsert, id: "two-keys-create", table: "prices", key: "region, sku", contentType: subject.ContentCSV,
			body: []byte("region,sku,price\neu,x,1\neu,y,2\nus,x,3\n")},
		{op: subject.OpUpsert, id: "two-keys-replace", table: "prices", key: "region,sku", contentType: subject.ContentCSV,
			body: []byte("region,sku,price\neu,y,20\nus,y,40\n")},
		upsertRows("items", "id", "new-column", `{"id": 1, "name": "a", "qty": 10, "color": "red"}`),
		upsertRows("items", "sku", "key-not-in-rows", `{"id": 1, "name": "z"}`),
		upsertRows("items", "", "no-key", `{"id": 1, "name": "z"}`),
		upsertRows("items", "id,\"x", "bad-key", `{"id": 1, "name": "z"}`),
	} {
		h.publish(t, "strict", m)
	}
	got := strictOutcomes.await(t, "create", "replace", "two-keys-create", "two-keys-replace", "new-column", "key-not-in-rows", "no-key", "bad-key")
	requireApplied(t, got["create"], 2)
	requireApplied(t, got["replace"], 2) // one replaced, one inserted
	requireApplied(t, got["two-keys-create"], 3)
	requireApplied(t, got["two-keys-replace"], 2)
	requireFailed(t, got["new-column"], "schema_mismatch")
	require.Contains(t, got["new-column"].GetError().GetMessage(), "color")
	requireFailed(t, got["key-not-in-rows"], "invalid_argument")
	requireFailed(t, got["no-key"], "invalid_argument")
	requireFailed(t, got["bad-key"], "invalid_argument")

	for _, m := range []mutation{
		upsertRows("items", "id", "o-create", `{"id": 1, "name": "a"}`),
		upsertRows("items", "id", "o-new-column", `{"id": 1, "name": "A", "color": "red"}`, `{"id": 2, "name": "b", "color": "blue"}`),
		// Columns missing from the rows keep their values.
		upsertRows("items", "id", "o-some-columns", `{"id": 2, "color": "green"}`),
	} {
		h.publish(t, "open", m)
	}
	got = openOutcomes.await(t, "o-create", "o-new-column", "o-some-columns")
	requireApplied(t, got["o-create"], 1)
	requireApplied(t, got["o-new-column"], 2)
	requireApplied(t, got["o-some-columns"], 1)

	strictRun.stop(t)
	openRun.stop(t)
	db := openCopy(t, localFile(strictRun.dir))
	require.Equal(t, []string{"1|a|10", "2|B|21", "3|c|30"}, queryStrings(t, db, "SELECT * FROM items ORDER BY id"))
	require.Equal(t, []string{"eu|x|1", "eu|y|20", "us|x|3", "us|y|40"}, queryStrings(t, db, "SELECT * FROM prices ORDER BY region, sku"))
	db = openCopy(t, localFile(openRun.dir))
	require.Equal(t, []string{"1|A|red", "2|b|green"}, queryStrings(t, db, "SELECT id, name, color FROM items ORDER BY id"))
}
