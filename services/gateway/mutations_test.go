package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// accepted decodes a 202 answer.
func accepted(t *testing.T, r response) *teatreev1.Accepted {
	t.Helper()
	require.Equal(t, http.StatusAccepted, r.status, "body %s", r.body)
	a := &teatreev1.Accepted{}
	require.NoError(t, wire.Unmarshal(r.body, a))
	return a
}

func TestAppendPublishesAndDedups(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "sales")
	rows := []byte("id,amount\n1,10\n2,20\n")
	headers := []string{
		"Content-Type", "text/csv",
		"Idempotency-Key", "r-1",
		"Tt-Notify-Url", "https://example.com/hook",
		"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}

	r := env.send(t, http.MethodPost, "/v1/models/sales/tables/orders/rows", rows, headers...)
	a := accepted(t, r)
	require.Equal(t, "r-1", a.GetRequestId())
	require.NotZero(t, a.GetSeq())
	require.False(t, a.GetDuplicate())
	require.Contains(t, string(r.body), `"seq":`+strconv.FormatUint(a.GetSeq(), 10))

	msg, err := env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, env.names.Mut("sales", subject.OpAppend), msg.Subject)
	require.Equal(t, rows, msg.Data)
	require.Equal(t, "sales.r-1", msg.Header.Get(subject.HeaderMsgID))
	require.Equal(t, "orders", msg.Header.Get(subject.HeaderTable))
	require.Equal(t, "text/csv", msg.Header.Get(subject.HeaderContentType))
	require.Equal(t, "https://example.com/hook", msg.Header.Get(subject.HeaderNotifyURL))
	require.Equal(t, headers[7], msg.Header.Get("traceparent"))
	require.Empty(t, msg.Header.Get(subject.HeaderKey))
	require.Empty(t, msg.Header.Get(subject.HeaderBodyRef))

	again := accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/tables/orders/rows", rows, headers...))
	require.True(t, again.GetDuplicate())
	require.Equal(t, a.GetSeq(), again.GetSeq())
	require.EqualValues(t, 1, env.mutCount(t))
}

func TestUpsertSQLAndCall(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "sales")

	// Upsert, with the request id in the query and no id at all.
	a := accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/tables/orders/rows?key=id,region&request_id=up-1",
		[]byte(`[{"id":1}]`), "Content-Type", "application/json"))
	require.Equal(t, "up-1", a.GetRequestId())
	msg, err := env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, env.names.Mut("sales", subject.OpUpsert), msg.Subject)
	require.Equal(t, "id,region", msg.Header.Get(subject.HeaderKey))

	a = accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/tables/orders/rows",
		[]byte(`{"id":2}`+"\n"), "Content-Type", "application/x-ndjson"))
	require.NoError(t, subject.ValidateRequest(a.GetRequestId()), "a generated id follows the contract")
	msg, err = env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, subject.MsgID("sales", a.GetRequestId()), msg.Header.Get(subject.HeaderMsgID))

	// SQL goes out unchanged.
	sql := []byte(`{"sql":"update orders set amount = ? where id = ?","params":[5, 1]}`)
	a = accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/sql", sql,
		"Content-Type", "application/json; charset=utf-8", "Tt-Request-Id", "sql-1"))
	require.Equal(t, "sql-1", a.GetRequestId())
	msg, err = env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, env.names.Mut("sales", subject.OpSQL), msg.Subject)
	require.Equal(t, sql, msg.Data)
	require.Equal(t, subject.ContentJSON, msg.Header.Get(subject.HeaderContentType))

	// A call wraps its arguments.
	env.putFunction(t, "sales", "close_month", `{"kind":"sql","sql":"DELETE FROM orders WHERE month = $month AND NOT $dry_run",
		"params":[{"name":"month","type":"VARCHAR","required":true},{"name":"dry_run","type":"BOOLEAN"}]}`)
	env.putFunction(t, "sales", "refresh", `{"kind":"sql","sql":"DELETE FROM orders"}`)
	a = accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/calls/close_month",
		[]byte(`{"month":"2026-11","dry_run":true}`), "Content-Type", "application/json"))
	msg, err = env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, env.names.Mut("sales", subject.OpCall), msg.Subject)
	require.JSONEq(t, `{"function":"close_month","args":{"month":"2026-11","dry_run":true}}`, string(msg.Data))

	a = accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/calls/refresh", nil))
	msg, err = env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.JSONEq(t, `{"function":"refresh","args":{}}`, string(msg.Data))
}

func TestMutationRejects(t *testing.T) {
	t.Parallel()
	env := start(t, func(c *Config, _ *Deps) { c.MaxBody = 1 << 10 })
	env.createModel(t, "sales")
	env.putFunction(t, "sales", "f", `{"kind":"sql","sql":"DELETE FROM t"}`)
	csv := []string{"Content-Type", "text/csv"}
	rows := []byte("id\n1\n")
	big := bytes.Repeat([]byte("x"), 2<<10)

	tests := []struct {
		name   string
		path   string
		body   []byte
		header []string
		status int
		code   string
	}{
		{"bad model id", "/v1/models/Sales/tables/orders/rows", rows, csv, 400, "invalid_argument"},
		{"bad table name", "/v1/models/sales/tables/Orders/rows", rows, csv, 400, "invalid_argument"},
		{"reserved table name", "/v1/models/sales/tables/_tt_requests/rows", rows, csv, 400, "invalid_argument"},
		{"bad request id", "/v1/models/sales/tables/orders/rows", rows, append([]string{"Idempotency-Key", "a.b"}, csv...), 400, "invalid_argument"},
		{"bad request id in query", "/v1/models/sales/tables/orders/rows?request_id=a*b", rows, csv, 400, "invalid_argument"},
		{"reserved request id", "/v1/models/sales/tables/orders/rows", rows, append([]string{"Idempotency-Key", "seq-7"}, csv...), 400, "invalid_argument"},
		{"reserved request id header", "/v1/models/sales/sql", []byte(`{"sql":"select 1"}`), []string{"Tt-Request-Id", "seq-7"}, 400, "invalid_argument"},
		{"reserved request id in query", "/v1/models/sales/tables/orders/rows?request_id=seq-7", rows, csv, 400, "invalid_argument"},
		{"unknown model", "/v1/models/nope/tables/orders/rows", rows, csv, 404, "not_found"},
		{"no content type", "/v1/models/sales/tables/orders/rows", rows, nil, 400, "invalid_argument"},
		{"unknown content type", "/v1/models/sales/tables/orders/rows", rows, []string{"Content-Type", "text/plain"}, 400, "invalid_argument"},
		{"empty rows", "/v1/models/sales/tables/orders/rows", nil, csv, 400, "invalid_argument"},
		{"empty key", "/v1/models/sales/tables/orders/rows?key=id,,x", rows, csv, 400, "invalid_argument"},
		{"bad wait", "/v1/models/sales/tables/orders/rows?wait=forever", rows, csv, 400, "invalid_argument"},
		{"bad timeout", "/v1/models/sales/tables/orders/rows?wait=applied&timeout=soon", rows, csv, 400, "invalid_argument"},
		{"sql not json", "/v1/models/sales/sql", []byte(`select 1`), nil, 400, "invalid_argument"},
		{"sql empty", "/v1/models/sales/sql", []byte(`{"sql":"  ","params":[]}`), nil, 400, "invalid_argument"},
		{"sql wrong content type", "/v1/models/sales/sql", []byte(`{"sql":"select 1"}`), csv, 400, "invalid_argument"},
		{"call args not an object", "/v1/models/sales/calls/f", []byte(`[1,2]`), nil, 400, "invalid_argument"},
		{"body over max", "/v1/models/sales/tables/orders/rows", big, csv, 413, "payload_too_large"},
		{"sql over max", "/v1/models/sales/sql", big, nil, 413, "payload_too_large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := env.send(t, http.MethodPost, tc.path, tc.body, tc.header...)
			requireError(t, r, tc.status, tc.code)
		})
	}

	// Without a Content-Length the limit is found while reading.
	r := env.sendReader(t, http.MethodPost, "/v1/models/sales/tables/orders/rows", io.MultiReader(bytes.NewReader(big)), csv...)
	requireError(t, r, http.StatusRequestEntityTooLarge, "payload_too_large")

	require.Zero(t, env.mutCount(t), "nothing was published")
}

func TestLargeBodyGoesThroughBlobStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "sales")
	require.EqualValues(t, natsboot.DefaultMaxPayload, env.nats.Conn.MaxPayload())
	body := bytes.Repeat([]byte("0123456789abcdef"), (natsboot.DefaultMaxPayload+1<<20)/16)

	a := accepted(t, env.sendReader(t, http.MethodPost, "/v1/models/sales/tables/orders/rows",
		bytes.NewReader(body), "Content-Type", "application/vnd.apache.arrow.stream", "Idempotency-Key", "big-1"))
	msg, err := env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Empty(t, msg.Data)
	ref := msg.Header.Get(subject.HeaderBodyRef)
	require.Equal(t, "uploads/sales/big-1", ref)
	require.Equal(t, "orders", msg.Header.Get(subject.HeaderTable))
	stored, err := env.blobs.Get(ctx, ref)
	require.NoError(t, err)
	require.True(t, bytes.Equal(body, stored), "the upload holds the whole body")

	// A large SQL body takes the same way.
	sql := []byte(`{"sql":"select 1 -- ` + strings.Repeat("x", natsboot.DefaultMaxPayload) + `"}`)
	a = accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/sql", sql, "Idempotency-Key", "big-2"))
	msg, err = env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, "uploads/sales/big-2", msg.Header.Get(subject.HeaderBodyRef))
	stored, err = env.blobs.Get(ctx, "uploads/sales/big-2")
	require.NoError(t, err)
	require.True(t, bytes.Equal(sql, stored))
}
