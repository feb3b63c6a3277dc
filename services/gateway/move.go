package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// moveWait bounds a move: the owner's hand-over (the dispatcher takes the
// lease back after 30s without one) and the grant.
const moveWait = time.Minute

// postMove answers POST /v1/models/{model}/move, body {"to":"NODE"}, with
// {"model","from","to","epoch"} once the target holds the model's lease.
// The dispatcher does the move (see services/dispatcher/move.go).
func (g *Gateway) postMove(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	if _, err := g.spec(r.Context(), model); err != nil {
		g.writeError(w, r, err)
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSpecBody))
	if err != nil {
		g.writeError(w, r, bodyError(err))
		return
	}
	req := catalog.MoveRequest{}
	if err := json.Unmarshal(b, &req); err != nil {
		g.writeError(w, r, apierr.Errorf(apierr.InvalidArgument, `move: want {"to":"NODE"}: %v`, err))
		return
	}
	if err := subject.ValidateModel(req.To); err != nil {
		g.writeError(w, r, apierr.Errorf(apierr.InvalidArgument, `move: "to" names a node id: %v`, err))
		return
	}
	req.Model = model
	if b, err = json.Marshal(req); err != nil {
		g.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), moveWait)
	defer cancel()
	msg, err := g.deps.NC.RequestWithContext(ctx, g.cfg.Names.DispatchMove(), b)
	if err != nil {
		g.writeError(w, r, wrapNATS("move "+model+": ask the dispatcher (is one running?)", err))
		return
	}
	if msg.Header.Get(subject.HeaderStatus) == subject.StatusFailed {
		g.writeError(w, r, replyError(msg))
		return
	}
	writeBody(w, http.StatusOK, "application/json", msg.Data)
}

// replyError is the error a failed NATS reply carries.
func replyError(msg *nats.Msg) error {
	e := &teatreev1.ErrorReply{}
	if err := wire.Unmarshal(msg.Data, e); err != nil || e.GetError().GetCode() == "" {
		return apierr.Errorf(apierr.Code(msg.Header.Get(subject.HeaderErrorCode)), "%s", msg.Data)
	}
	return apierr.New(apierr.Code(e.GetError().GetCode()), e.GetError().GetMessage())
}
