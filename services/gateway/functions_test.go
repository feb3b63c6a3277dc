package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
)

const restockDef = `{"kind":"sql","sql":"UPDATE stock SET qty = qty + $qty WHERE item = $item",
	"params":[{"name":"item","type":"VARCHAR","required":true},{"name":"qty","type":"INTEGER","default":1}]}`

const describeDef = `{"kind":"compute","capabilities":["go"],"handler":"describe",
	"params":[{"name":"table","type":"VARCHAR","required":true}],"output":{"table":"stats","mode":"replace"}}`

// putFunction registers a function through the API.
func (e *testEnv) putFunction(t *testing.T, model, name, def string) map[string]any {
	t.Helper()
	r := e.send(t, http.MethodPut, "/v1/models/"+model+"/functions/"+name, []byte(def), "Content-Type", "application/json")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var got map[string]any
	require.NoError(t, json.Unmarshal(r.body, &got))
	return got
}

func TestFunctionRegistry(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")

	got := env.putFunction(t, "sales", "restock", restockDef)
	require.Equal(t, "sales", got["model"])
	require.Equal(t, "restock", got["name"])
	require.Equal(t, "sql", got["kind"])
	require.NotEmpty(t, got["updated_at"])
	env.putFunction(t, "sales", "describe", describeDef)

	r := env.send(t, http.MethodGet, "/v1/models/sales/functions/restock", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var shown map[string]any
	require.NoError(t, json.Unmarshal(r.body, &shown))
	require.Equal(t, got, shown)

	r = env.send(t, http.MethodGet, "/v1/models/sales/functions", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var list struct {
		Functions []struct{ Name, Kind string }
	}
	require.NoError(t, json.Unmarshal(r.body, &list))
	require.Equal(t, []struct{ Name, Kind string }{{"describe", "compute"}, {"restock", "sql"}}, list.Functions, "by name")

	// Replacing keeps one definition.
	env.putFunction(t, "sales", "restock", `{"kind":"sql","sql":"DELETE FROM stock"}`)
	r = env.send(t, http.MethodGet, "/v1/models/sales/functions/restock", nil)
	require.Contains(t, string(r.body), "DELETE FROM stock")

	r = env.send(t, http.MethodDelete, "/v1/models/sales/functions/restock", nil)
	require.Equal(t, http.StatusNoContent, r.status, "body %s", r.body)
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/functions/restock", nil), 404, "not_found")
	requireError(t, env.send(t, http.MethodDelete, "/v1/models/sales/functions/restock", nil), 404, "not_found")

	env.createModel(t, "empty")
	r = env.send(t, http.MethodGet, "/v1/models/empty/functions", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{"functions":[]}`, string(r.body))
}

func TestFunctionRegistryRejects(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")
	for _, c := range []struct {
		name, method, path, body string
		status                   int
		code, message            string
	}{
		{"unknown model", "PUT", "/v1/models/nope/functions/f", restockDef, 404, "not_found", "nope"},
		{"unknown model list", "GET", "/v1/models/nope/functions", "", 404, "not_found", "nope"},
		{"bad name", "PUT", "/v1/models/sales/functions/Restock", restockDef, 400, "invalid_argument", "function name"},
		{"not json", "PUT", "/v1/models/sales/functions/f", `kind: sql`, 400, "invalid_argument", "definition"},
		{"unknown field", "PUT", "/v1/models/sales/functions/f", `{"kind":"sql","sql":"DELETE FROM t","timeout":5}`, 400, "invalid_argument", "timeout"},
		{"bad kind", "PUT", "/v1/models/sales/functions/f", `{"kind":"js"}`, 400, "invalid_argument", "kind"},
		{"bad param type", "PUT", "/v1/models/sales/functions/f", `{"kind":"sql","sql":"DELETE FROM t WHERE a = $a","params":[{"name":"a","type":"NUMBERISH"}]}`, 400, "invalid_argument", "params[0] (a).type"},
		{"sql does not parse", "PUT", "/v1/models/sales/functions/f", `{"kind":"sql","sql":"DELET FROM t"}`, 400, "invalid_argument", "sql"},
		{"sql attach", "PUT", "/v1/models/sales/functions/f", `{"kind":"sql","sql":"ATTACH 'x.db' AS x"}`, 400, "invalid_argument", "not allowed"},
		{"compute reserved capability", "PUT", "/v1/models/sales/functions/f", `{"kind":"compute","capabilities":["duckdb"],"handler":"h"}`, 400, "invalid_argument", "capabilities[0]"},
		{"show missing", "GET", "/v1/models/sales/functions/f", "", 404, "not_found", "f"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body []byte
			if c.body != "" {
				body = []byte(c.body)
			}
			r := env.send(t, c.method, c.path, body)
			requireError(t, r, c.status, c.code)
			require.Contains(t, string(r.body), c.message)
		})
	}
	r := env.send(t, http.MethodGet, "/v1/models/sales/functions", nil)
	require.JSONEq(t, `{"functions":[]}`, string(r.body), "nothing refused was stored")
}

func TestCallFunction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "sales")
	env.putFunction(t, "sales", "restock", restockDef)
	env.putFunction(t, "sales", "describe", describeDef)
	calls, err := env.nats.JS.Stream(ctx, env.names.CallStream())
	require.NoError(t, err)

	// A SQL function is a call mutation.
	a := accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/calls/restock", []byte(`{"item":"apple","qty":5}`), "Idempotency-Key", "c-1"))
	require.Equal(t, "c-1", a.GetRequestId())
	msg, err := env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, env.names.Mut("sales", subject.OpCall), msg.Subject)
	require.JSONEq(t, `{"function":"restock","args":{"item":"apple","qty":5}}`, string(msg.Data))

	// A compute function goes to the dispatcher's intake.
	a = accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/calls/describe?deadline_ms=30000&min_seq=4",
		[]byte(`{"table":"orders"}`), "Idempotency-Key", "d-1"))
	require.Equal(t, "d-1", a.GetRequestId())
	msg, err = calls.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, env.names.Call(subject.CallIntake, "sales"), msg.Subject)
	require.Equal(t, "sales.d-1", msg.Header.Get(subject.HeaderMsgID))
	require.JSONEq(t, `{"function":"describe","args":{"table":"orders"},"deadline_ms":30000,"min_seq":4}`, string(msg.Data))
	again := accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/calls/describe", []byte(`{"table":"orders"}`), "Idempotency-Key", "d-1"))
	require.True(t, again.GetDuplicate())

	mutBefore := env.mutCount(t)
	for _, c := range []struct {
		name, path, body string
		status           int
		code, message    string
	}{
		{"unknown function", "/v1/models/sales/calls/nope", `{}`, 404, "not_found", "nope"},
		{"unknown model", "/v1/models/nope/calls/restock", `{}`, 404, "not_found", "nope"},
		{"missing argument", "/v1/models/sales/calls/restock", `{"qty":1}`, 400, "invalid_argument", `\"item\"`},
		{"undeclared argument", "/v1/models/sales/calls/restock", `{"item":"a","colour":1}`, 400, "invalid_argument", `\"colour\"`},
		{"argument does not cast", "/v1/models/sales/calls/restock", `{"item":"a","qty":"lots"}`, 400, "invalid_argument", `\"qty\"`},
		{"compute argument missing", "/v1/models/sales/calls/describe", `{}`, 400, "invalid_argument", `\"table\"`},
		{"args not an object", "/v1/models/sales/calls/restock", `[1]`, 400, "invalid_argument", "object"},
		{"bad deadline", "/v1/models/sales/calls/describe?deadline_ms=soon", `{"table":"t"}`, 400, "invalid_argument", "deadline_ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := env.send(t, http.MethodPost, c.path, []byte(c.body))
			requireError(t, r, c.status, c.code)
			require.Contains(t, string(r.body), c.message)
		})
	}
	require.Equal(t, mutBefore, env.mutCount(t), "nothing refused was published")
}

// A compute call with ?wait=applied answers with its terminal
// notification: here the first page of its result.
func TestCallComputeWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "sales")
	env.putFunction(t, "sales", "describe", describeDef)
	// Stand in for the dispatcher and the notifier: answer the call once
	// it is queued.
	sub, err := env.nats.Conn.Subscribe(env.names.Call(subject.CallIntake, "sales"), func(m *nats.Msg) {
		page := nats.NewMsg(env.names.NtfRequest("sales", "w-1"))
		page.Header.Set(subject.HeaderStatus, subject.StatusResult)
		page.Header.Set(subject.HeaderContentType, "application/json")
		page.Data = []byte(`[{"column":"id"}]`)
		if _, err := env.nats.JS.PublishMsg(ctx, page); err != nil {
			t.Errorf("publish the result: %v", err)
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	r := env.send(t, http.MethodPost, "/v1/models/sales/calls/describe?wait=applied", []byte(`{"table":"orders"}`), "Idempotency-Key", "w-1")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.Equal(t, subject.StatusResult, r.header.Get(subject.HeaderStatus))
	require.JSONEq(t, `[{"column":"id"}]`, string(r.body))
}
