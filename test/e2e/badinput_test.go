package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// TestBadInput sends every kind of bad input and checks that each gets a
// clear error with the contract's code, and that nothing else changes.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--max-body", "1048576")
	_, js := s.connect(t)
	createModel(t, s, `{"id":"shop"}`)
	publish(t, js, "tt.mut.shop.append", "seed", map[string]string{"Tt-Table": "items", "Content-Type": "text/csv"}, []byte("id,name\n1,a\n2,b\n"))
	st, _ := waitNotification(t, js, "shop", "seed")
	require.Equal(t, "applied", st.Status, "%+v", st)

	good := arrowBody(t, []int64{1}, []string{"x"})
	csv := map[string]string{"Tt-Table": "items", "Content-Type": "text/csv"}
	sqlHdr := map[string]string{"Content-Type": "application/json"}
	cases := []struct {
		name    string
		subject string
		id      string
		headers map[string]string
		body    []byte
		// notifyModel and notifyID name the notification when they differ
		// from the model of the subject and the id.
		notifyModel, notifyID string
		code                  string
	}{
		{name: "model that does not exist", subject: "tt.mut.nosuch.append", id: "b1", headers: csv, body: []byte("id\n1\n"), code: "not_found"},
		{name: "invalid model id", subject: "tt.mut.Shop_Big.append", id: "b2", headers: csv, body: []byte("id\n1\n"), code: "invalid_argument"},
		{name: "invalid table name", subject: "tt.mut.shop.append", id: "b3", headers: map[string]string{"Tt-Table": "Items;drop", "Content-Type": "text/csv"}, body: []byte("id\n1\n"), code: "invalid_argument"},
		{name: "reserved table name", subject: "tt.mut.shop.append", id: "b4", headers: map[string]string{"Tt-Table": "_tt_state", "Content-Type": "text/csv"}, body: []byte("id\n1\n"), code: "invalid_argument"},
		{name: "missing table header", subject: "tt.mut.shop.append", id: "b5", headers: map[string]string{"Content-Type": "text/csv"}, body: []byte("id\n1\n"), code: "invalid_argument"},
		{name: "unknown op", subject: "tt.mut.shop.frobnicate", id: "b6", headers: csv, body: []byte("id\n1\n"), code: "invalid_argument"},
		{name: "missing content type", subject: "tt.mut.shop.append", id: "b7", headers: map[string]string{"Tt-Table": "items"}, body: []byte("id\n1\n"), code: "invalid_argument"},
		{name: "unsupported content type", subject: "tt.mut.shop.append", id: "b8", headers: map[string]string{"Tt-Table": "items", "Content-Type": "image/png"}, body: []byte("id\n1\n"), code: "invalid_argument"},
		{name: "empty body", subject: "tt.mut.shop.append", id: "b9", headers: csv, body: nil, code: "invalid_argument"},
		{name: "truncated arrow", subject: "tt.mut.shop.append", id: "b10", headers: map[string]string{"Tt-Table": "items", "Content-Type": "application/vnd.apache.arrow.stream"}, body: good[:len(good)-20], code: "invalid_argument"},
		{name: "arrow garbage", subject: "tt.mut.shop.append", id: "b11", headers: map[string]string{"Tt-Table": "items", "Content-Type": "application/vnd.apache.arrow.stream"}, body: []byte("not arrow at all"), code: "invalid_argument"},
		{name: "csv with a bad row", subject: "tt.mut.shop.append", id: "b12", headers: csv, body: []byte("id,name\n3,c\n4,d,extra,more\n5,e\n"), code: "invalid_argument"},
		{name: "json that is not rows", subject: "tt.mut.shop.append", id: "b13", headers: map[string]string{"Tt-Table": "items", "Content-Type": "application/json"}, body: []byte(`{"id":1}`), code: "invalid_argument"},
		{name: "json array of scalars", subject: "tt.mut.shop.append", id: "b14", headers: map[string]string{"Tt-Table": "items", "Content-Type": "application/json"}, body: []byte(`[1,2,3]`), code: "invalid_argument"},
		{name: "malformed ndjson", subject: "tt.mut.shop.append", id: "b15", headers: map[string]string{"Tt-Table": "items", "Content-Type": "application/x-ndjson"}, body: []byte("{\"id\":3\n"), code: "invalid_argument"},
		{name: "parquet garbage", subject: "tt.mut.shop.append", id: "b16", headers: map[string]string{"Tt-Table": "items", "Content-Type": "application/vnd.apache.parquet"}, body: []byte("PAR1 nope"), code: "invalid_argument"},
		{name: "unknown column", subject: "tt.mut.shop.append", id: "b17", headers: csv, body: []byte("id,colour\n3,red\n"), code: "schema_mismatch"},
		{name: "wrong column type", subject: "tt.mut.shop.append", id: "b18", headers: csv, body: []byte("id,name\nthree,c\n"), code: "schema_mismatch"},
		{name: "upsert without key", subject: "tt.mut.shop.upsert", id: "b19", headers: csv, body: []byte("id,name\n1,z\n"), code: "invalid_argument"},
		{name: "upsert on a key not in the rows", subject: "tt.mut.shop.upsert", id: "b20", headers: map[string]string{"Tt-Table": "items", "Tt-Key": "sku", "Content-Type": "text/csv"}, body: []byte("id,name\n1,z\n"), code: "invalid_argument"},
		{name: "sql error", subject: "tt.mut.shop.sql", id: "b21", headers: sqlHdr, body: []byte(`{"sql":"update items set nope = 1"}`), code: "sql_error"},
		{name: "sql body not json", subject: "tt.mut.shop.sql", id: "b22", headers: sqlHdr, body: []byte(`update items set name = 'x'`), code: "invalid_argument"},
		{name: "sql reading a local file", subject: "tt.mut.shop.sql", id: "b23", headers: sqlHdr, body: []byte(`{"sql":"insert into items select 9, content from read_text('/etc/passwd')"}`), code: "permission_denied"},
		{name: "sql attach", subject: "tt.mut.shop.sql", id: "b24", headers: sqlHdr, body: []byte(`{"sql":"ATTACH ':memory:' AS other"}`), code: "permission_denied"},
		{name: "sql transaction control", subject: "tt.mut.shop.sql", id: "b25", headers: sqlHdr, body: []byte(`{"sql":"COMMIT; DELETE FROM items"}`), code: "permission_denied"},
		{name: "sql setting", subject: "tt.mut.shop.sql", id: "b26", headers: sqlHdr, body: []byte(`{"sql":"SET threads = 1"}`), code: "permission_denied"},
		{name: "sql touching bookkeeping", subject: "tt.mut.shop.sql", id: "b27", headers: sqlHdr, body: []byte(`{"sql":"DELETE FROM _TT_requests"}`), code: "permission_denied"},
		{name: "sql copy to a file", subject: "tt.mut.shop.sql", id: "b28", headers: sqlHdr, body: []byte(`{"sql":"COPY items TO '/tmp/stolen.csv'"}`), code: "permission_denied"},
		{name: "sql missing parameter", subject: "tt.mut.shop.sql", id: "b29", headers: sqlHdr, body: []byte(`{"sql":"delete from items where id = $1"}`), code: "invalid_argument"},
		{name: "call of no function", subject: "tt.mut.shop.call", id: "b30", headers: sqlHdr, body: []byte(`{"function":"nope","args":{}}`), code: "not_found"},
		{name: "invalid request id", subject: "tt.mut.shop.append", id: "bad id!", headers: csv, body: []byte("id\n1\n"), notifyID: "seq", code: "invalid_argument"},
		{name: "reserved seq- request id", subject: "tt.mut.shop.append", id: "seq-7", headers: csv, body: []byte("id\n1\n"), notifyID: "seq", code: "invalid_argument"},
		{name: "request id of another model", subject: "tt.mut.shop.append", id: "other.b31", headers: csv, body: []byte("id\n1\n"), notifyID: "seq", code: "invalid_argument"},
		{name: "sql bare select", subject: "tt.mut.shop.sql", id: "b32", headers: sqlHdr, body: []byte(`{"sql":"select * from items"}`), code: "invalid_argument"},
		{name: "sql pragma", subject: "tt.mut.shop.sql", id: "b33", headers: sqlHdr, body: []byte(`{"sql":"PRAGMA enable_profiling"}`), code: "invalid_argument"},
		{name: "sql with the model-prefixed id", subject: "tt.mut.shop.sql", id: "shop.b34", headers: sqlHdr, body: []byte(`{"sql":"update items set nope = 1"}`), notifyID: "b34", code: "sql_error"},
	}
	for _, c := range cases {
		seq := publish(t, js, c.subject, c.id, c.headers, c.body)
		model := strings.Split(c.subject, ".")[2]
		id := c.id
		switch c.notifyID {
		case "":
		case "seq":
			id = "seq-" + itoa(seq)
		default:
			id = c.notifyID
		}
		st, h := waitNotification(t, js, model, id)
		requireError(t, st, c.code)
		require.Equal(t, "failed", h.Get("Tt-Status"), c.name)
		require.Equal(t, seq, st.Seq, c.name)
	}

	// A body over the server's max payload is refused before it is sent.
	big := nats.NewMsg("tt.mut.shop.append")
	big.Header.Set("Tt-Table", "items")
	big.Data = bytes.Repeat([]byte("x"), 9<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := js.PublishMsg(ctx, big)
	require.Error(t, err)

	// Over HTTP: errors answer before anything is published.
	httpCases := []struct {
		name, method, path, contentType string
		body                            []byte
		status                          int
		code                            string
	}{
		{"invalid model id", "POST", "/v1/models/Shop!/tables/items/rows", "text/csv", []byte("id\n1\n"), 400, "invalid_argument"},
		{"unknown model", "POST", "/v1/models/nosuch/tables/items/rows", "text/csv", []byte("id\n1\n"), 404, "not_found"},
		{"invalid table", "POST", "/v1/models/shop/tables/Bad-Table/rows", "text/csv", []byte("id\n1\n"), 400, "invalid_argument"},
		{"missing content type", "POST", "/v1/models/shop/tables/items/rows", "", []byte("id\n1\n"), 400, "invalid_argument"},
		{"body over the limit", "POST", "/v1/models/shop/tables/items/rows", "text/csv", bytes.Repeat([]byte("1\n"), 1<<20), 413, "payload_too_large"},
		{"sql not json", "POST", "/v1/models/shop/sql", "application/json", []byte("drop table items"), 400, "invalid_argument"},
		{"bad model spec", "POST", "/v1/models", "application/json", []byte(`{"id":"a.b"}`), 400, "invalid_argument"},
		{"model exists", "POST", "/v1/models", "application/json", []byte(`{"id":"shop"}`), 400, "invalid_argument"},
		{"unknown request", "GET", "/v1/models/shop/requests/never-sent", "", nil, 404, "not_found"},
		{"snapshot of unknown model", "GET", "/v1/models/nosuch/snapshots", "", nil, 404, "not_found"},
	}
	stream, err := js.Stream(context.Background(), "TT_MUT")
	require.NoError(t, err)
	before, err := stream.Info(context.Background())
	require.NoError(t, err)
	for _, c := range httpCases {
		code, body, _ := do(t, c.method, s.url(c.path), c.contentType, c.body)
		require.Equal(t, c.status, code, "%s: %s", c.name, body)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(body, &e), c.name)
		require.Equal(t, c.code, e.Error.Code, c.name)
		require.NotEmpty(t, e.Error.Message, c.name)
	}
	after, err := stream.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, before.State.LastSeq, after.State.LastSeq, "a refused HTTP request published something")

	// Nothing else changed: the table holds the seed rows, and a good
	// request after all that still applies.
	publish(t, js, "tt.mut.shop.sql", "count", sqlHdr, []byte(`{"sql":"insert into items select count(*) + 100, 'count' from items"}`))
	st, _ = waitNotification(t, js, "shop", "count")
	require.Equal(t, "applied", st.Status, "%+v", st)
	code, body, _ := do(t, http.MethodPost, s.url("/v1/models/shop/sql?wait=applied"), "application/json",
		[]byte(`{"sql":"delete from items where id = $1 and name = 'count'","params":[102]}`))
	require.Equal(t, http.StatusOK, code, string(body))
	require.NoError(t, json.Unmarshal(body, &st))
	require.Equal(t, int64(1), *st.RowsAffected, "the table must hold exactly the 2 seed rows before the count row: %s", body)
}

func itoa(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
