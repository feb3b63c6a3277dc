package gateway

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// maxQueryBody bounds a query's JSON body.
const maxQueryBody = 1 << 20

// queryWait is how long the gateway waits for an executor's answer; the
// executor's own deadline is shorter.
const queryWait = 2 * time.Minute

// resultHeaders are the reply headers of a query page passed on to HTTP.
var resultHeaders = []string{
	subject.HeaderModel, subject.HeaderVersion, subject.HeaderPage, subject.HeaderPages,
	subject.HeaderResultID, subject.HeaderRows, subject.HeaderStatus,
}

// postQuery answers POST /v1/models/{model}/query: a query (body as on
// tt.query.<model>), or with ?result=ID&page=N a later page of a stored
// result (GET works for that too).
func (g *Gateway) postQuery(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model := r.PathValue("model")
	if err := subject.ValidateModel(model); err != nil {
		g.writeError(w, r, err)
		return
	}
	var subj string
	var body []byte
	if id := r.URL.Query().Get("result"); id != "" || r.Method == http.MethodGet {
		page, err := strconv.Atoi(r.URL.Query().Get("page"))
		if err != nil || page < 1 {
			g.writeError(w, r, apierr.New(apierr.InvalidArgument, "a stored result needs ?result=ID&page=N with N from 1"))
			return
		}
		if err := subject.ValidateRequestRef(id); err != nil {
			g.writeError(w, r, apierr.Errorf(apierr.InvalidArgument, "result id %q: not a result id", id))
			return
		}
		subj = g.cfg.Names.Result(id, page)
	} else {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxQueryBody))
		if err != nil {
			g.writeError(w, r, bodyError(err))
			return
		}
		if err := wire.Unmarshal(b, &teatreev1.Query{}); err != nil {
			g.writeError(w, r, apierr.Errorf(apierr.InvalidArgument, `query body: want {"sql": "...", "params": [...], "format": "json"}: %v`, err))
			return
		}
		subj, body = g.cfg.Names.Query(model), b
	}
	ctx, cancel := context.WithTimeout(ctx, queryWait)
	defer cancel()
	msg, err := g.deps.NC.RequestWithContext(ctx, subj, body)
	if errors.Is(err, nats.ErrNoResponders) {
		g.writeError(w, r, apierr.New(apierr.Unavailable, "no query executor is running: start a node"))
		return
	}
	if err != nil {
		g.writeError(w, r, wrapNATS("query "+model, err))
		return
	}
	if m := msg.Header.Get(subject.HeaderModel); m != "" && m != model {
		g.writeError(w, r, apierr.Errorf(apierr.NotFound, "result %s is not a result of model %s", r.URL.Query().Get("result"), model))
		return
	}
	status := http.StatusOK
	if msg.Header.Get(subject.HeaderStatus) == subject.StatusFailed {
		status = apierr.Code(msg.Header.Get(subject.HeaderErrorCode)).HTTPStatus()
	}
	writeNATS(w, status, msg.Header, resultHeaders, msg.Data)
}
