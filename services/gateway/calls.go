package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// getCall answers GET /v1/models/{model}/calls/{call} with the call's
// record in tt_calls.
func (g *Gateway) getCall(w http.ResponseWriter, r *http.Request) {
	_, raw, err := g.callRecord(r.Context(), r.PathValue("model"), r.PathValue("call"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeBody(w, http.StatusOK, subject.ContentJSON, raw)
}

// deleteCall answers DELETE /v1/models/{model}/calls/{call}: a call that
// has ended is answered as it is; one that has not is cancelled by a
// cancelled event, which the notifier turns into the call's end (and the
// worker's stop), and answered 202 with its record as it was.
func (g *Gateway) deleteCall(w http.ResponseWriter, r *http.Request) {
	model, id := r.PathValue("model"), r.PathValue("call")
	rec, raw, err := g.callRecord(r.Context(), model, id)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if rec.Terminal() {
		writeBody(w, http.StatusOK, subject.ContentJSON, raw)
		return
	}
	ev := calls.Event{Event: calls.EventCancelled, Model: model, CallID: id, Message: "cancelled by DELETE over HTTP"}
	data, err := json.Marshal(ev)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	_, err = g.deps.JS.Publish(r.Context(), g.cfg.Names.Evt(model, subject.EventCall), data,
		jetstream.WithMsgID(subject.CallEventMsgID(model, id, calls.EventCancelled)))
	if err != nil {
		g.writeError(w, r, wrapNATS("cancel call", err))
		return
	}
	writeBody(w, http.StatusAccepted, subject.ContentJSON, raw)
}

// callRecord reads the record of call id of model: not_found when there is
// none.
func (g *Gateway) callRecord(ctx context.Context, model, id string) (*calls.Record, []byte, error) {
	if err := subject.ValidateModel(model); err != nil {
		return nil, nil, err
	}
	if err := subject.ValidateRequestRef(id); err != nil {
		return nil, nil, err
	}
	e, err := g.deps.Calls.Get(ctx, subject.MsgID(model, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil, apierr.Errorf(apierr.NotFound, "model %s has no compute call %s (or it is older than the records kept)", model, id)
	}
	if err != nil {
		return nil, nil, wrapNATS("read call record", err)
	}
	var rec calls.Record
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, nil, fmt.Errorf("decode record of call %s of %s: %w", id, model, err)
	}
	return &rec, e.Value(), nil
}

// workerList is the body of GET /v1/workers.
type workerList struct {
	Workers []calls.Heartbeat `json:"workers"`
}

// listWorkers answers GET /v1/workers with the heartbeat of every live
// compute worker, by id.
func (g *Gateway) listWorkers(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	lister, err := g.deps.Compute.ListKeys(ctx)
	if err != nil {
		g.writeError(w, r, wrapNATS("list workers", err))
		return
	}
	list := workerList{Workers: []calls.Heartbeat{}}
	for k := range lister.Keys() {
		e, err := g.deps.Compute.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // gone meanwhile
		}
		if err != nil {
			g.writeError(w, r, wrapNATS("read worker", err))
			return
		}
		var hb calls.Heartbeat
		if err := json.Unmarshal(e.Value(), &hb); err != nil {
			g.log.WarnContext(ctx, "skip a worker heartbeat that does not decode", "key", k, "err", err)
			continue
		}
		list.Workers = append(list.Workers, hb)
	}
	sort.Slice(list.Workers, func(i, j int) bool { return list.Workers[i].ID < list.Workers[j].ID })
	b, err := json.Marshal(list)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeBody(w, http.StatusOK, subject.ContentJSON, b)
}
