package gateway

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// notification is one message of tt.ntf.<model>.req.<request id>, live or
// read back from TT_NTF.
type notification struct {
	header nats.Header
	body   []byte
}

// terminal reports whether n ends its request: a status, or a page of a
// compute call's result.
func (n *notification) terminal() bool {
	s := n.header.Get(subject.HeaderStatus)
	return s == subject.StatusApplied || s == subject.StatusFailed || s == subject.StatusResult
}

// status is the HTTP status of a terminal notification: 200 when applied,
// the status of its error code when failed.
func (n *notification) status() int {
	if n.header.Get(subject.HeaderStatus) != subject.StatusFailed {
		return http.StatusOK
	}
	var rs teatreev1.RequestStatus
	if err := wire.Unmarshal(n.body, &rs); err != nil {
		return apierr.Internal.HTTPStatus()
	}
	return apierr.Code(rs.GetError().GetCode()).HTTPStatus()
}

// awaitOutcome waits up to d for the terminal notification of the request
// that ack acknowledged; sub was subscribed to its subject before the
// publish.
func (g *Gateway) awaitOutcome(ctx context.Context, sub *nats.Subscription, model, id string, ack *jetstream.PubAck, d time.Duration) (*notification, error) {
	// A retry may have its outcome already, published before sub existed.
	// A retry after JetStream's duplicate window gets a new seq, but the
	// model drops it as the request it already applied: the stored outcome
	// is its outcome either way.
	n, err := g.storedOutcome(ctx, model, id)
	if err != nil {
		return nil, err
	}
	if n != nil && n.terminal() {
		return n, nil
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		msg, err := sub.NextMsgWithContext(wctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return nil, apierr.Errorf(apierr.DeadlineExceeded,
					"request %s was accepted at seq %d but has no outcome after %s; poll GET /v1/models/%s/requests/%s",
					id, ack.Sequence, d, model, id)
			}
			return nil, wrapNATS("wait for the outcome of "+id, err)
		}
		n := &notification{header: msg.Header, body: msg.Data}
		if n.terminal() {
			return n, nil
		}
	}
}

// storedOutcome returns the newest notification of a request kept in
// TT_NTF, or nil when there is none.
func (g *Gateway) storedOutcome(ctx context.Context, model, id string) (*notification, error) {
	msg, err := g.streams.lastMsg(ctx, g.cfg.Names.NtfStream(), g.cfg.Names.NtfRequest(model, id))
	if err != nil || msg == nil {
		return nil, err
	}
	return &notification{header: msg.Header, body: msg.Data}, nil
}

// getRequest answers GET /v1/models/{model}/requests/{request} with the
// request's notification as the notifier published it.
func (g *Gateway) getRequest(w http.ResponseWriter, r *http.Request) {
	model, id := r.PathValue("model"), r.PathValue("request")
	if err := subject.ValidateModel(model); err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := subject.ValidateRequestRef(id); err != nil {
		g.writeError(w, r, err)
		return
	}
	n, err := g.storedOutcome(r.Context(), model, id)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if n == nil {
		g.writeError(w, r, apierr.Errorf(apierr.NotFound,
			"request %s of model %s has no outcome yet (or it is older than the notifications kept)", id, model))
		return
	}
	writeNotification(w, http.StatusOK, n)
}

// notificationHeaders are passed on from a notification to its HTTP answer.
var notificationHeaders = []string{subject.HeaderModel, subject.HeaderRequestID, subject.HeaderStatus, subject.HeaderSeq, subject.HeaderPrincipal}

func writeNotification(w http.ResponseWriter, status int, n *notification) {
	writeNATS(w, status, n.header, notificationHeaders, n.body)
}

// writeNATS answers with a NATS message: the headers named in pass, its
// content type (JSON when it has none) and its body.
func writeNATS(w http.ResponseWriter, status int, header nats.Header, pass []string, body []byte) {
	for _, h := range pass {
		if v := header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	ct := header.Get(subject.HeaderContentType)
	if ct == "" {
		ct = subject.ContentJSON
	}
	writeBody(w, status, ct, body)
}
