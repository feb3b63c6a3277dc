package gateway

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// TestMoveAsksTheDispatcher checks the gateway's side of a move: it
// validates, forwards {"model","to"} on tt.ctl.dispatch.move, and answers
// with the dispatcher's reply or its error code. A stand-in answers for
// the dispatcher (services/dispatcher tests the move itself; test/e2e the
// whole way).
func TestMoveAsksTheDispatcher(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")

	requireError(t, env.send(t, http.MethodPost, "/v1/models/nosuch/move", []byte(`{"to":"n2"}`)), http.StatusNotFound, "not_found")
	for _, body := range []string{`not json`, `{}`, `{"to":"N.2"}`} {
		requireError(t, env.send(t, http.MethodPost, "/v1/models/sales/move", []byte(body)), http.StatusBadRequest, "invalid_argument")
	}
	// No dispatcher runs yet.
	requireError(t, env.send(t, http.MethodPost, "/v1/models/sales/move", []byte(`{"to":"n2"}`)), http.StatusServiceUnavailable, "unavailable")

	asked := make(chan catalog.MoveRequest, 2)
	sub, err := env.nats.Conn.QueueSubscribe(env.names.DispatchMove(), subject.DispatchQueue, func(msg *nats.Msg) {
		var req catalog.MoveRequest
		_ = json.Unmarshal(msg.Data, &req)
		asked <- req
		out := nats.NewMsg(msg.Reply)
		if req.To == "full" {
			out.Header.Set(subject.HeaderStatus, subject.StatusFailed)
			out.Header.Set(subject.HeaderErrorCode, "resource_exhausted")
			out.Data, _ = wire.Marshal(&teatreev1.ErrorReply{Error: &teatreev1.Error{Code: "resource_exhausted", Message: "node full has no free slot"}})
		} else {
			out.Data, _ = json.Marshal(catalog.Move{Model: req.Model, From: "n1", To: req.To, Epoch: 7})
		}
		_ = msg.RespondMsg(out)
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })

	r := env.send(t, http.MethodPost, "/v1/models/sales/move", []byte(`{"to":"n2"}`))
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.JSONEq(t, `{"model":"sales","from":"n1","to":"n2","epoch":7}`, string(r.body))
	require.Equal(t, catalog.MoveRequest{Model: "sales", To: "n2"}, <-asked)

	r = env.send(t, http.MethodPost, "/v1/models/sales/move", []byte(`{"to":"full"}`))
	requireError(t, r, http.StatusTooManyRequests, "resource_exhausted")
	require.Contains(t, string(r.body), "no free slot")
}
