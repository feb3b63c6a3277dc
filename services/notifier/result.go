package notifier

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/jsbatch"
	"github.com/teatree-dev/teatree/pkg/outcome"
	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// pagesInFlight bounds how many result pages are published before their
// acknowledgements are awaited, so a large result is never all in memory.
const pagesInFlight = 16

// publishResult publishes a durable query's outcome on
// tt.ntf.<model>.req.<request id>: each page of its result as one message,
// in order, with Tt-Page and Tt-Pages (the last page ends it); or, when it
// failed, one failed status notification. An outcome delivered again goes
// on after the last page already published.
func (n *Notifier) publishResult(ctx context.Context, out *teatreev1.QueryOutcome, redelivered bool) error {
	if out.GetError() != nil {
		cause := apierr.New(apierr.Code(out.GetError().GetCode()), out.GetError().GetMessage())
		m, err := n.statusMsg(outcome.Failed(out.GetModel(), out.GetRequestId(), "query", 0, time.Now(), cause))
		if err != nil {
			return err
		}
		if err := n.keepWebhook(ctx, out.GetModel(), out.GetRequestId(), out.GetNotifyUrl()); err != nil {
			return err
		}
		n.markWebhook(m, out.GetNotifyUrl())
		return n.pub.Publish(ctx, []*nats.Msg{m})
	}
	if n.deps.Results == nil {
		return errors.New("this notifier has no result store to read the pages from")
	}
	subj := n.cfg.Names.NtfRequest(out.GetModel(), out.GetRequestId())
	first := 1
	if redelivered {
		last, err := n.last(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return err
		default:
			page, err := strconv.Atoi(last.Header.Get(subject.HeaderPage))
			if err != nil || last.Header.Get(subject.HeaderStatus) != subject.StatusResult {
				return nil // the request ended otherwise
			}
			first = page + 1
		}
	}
	if err := n.keepWebhook(ctx, out.GetModel(), out.GetRequestId(), out.GetNotifyUrl()); err != nil {
		return err
	}
	var batch []*nats.Msg
	for page := first; page <= int(out.GetPages()); page++ {
		meta, body, err := n.deps.Results.Get(ctx, out.GetResultId(), page)
		if err != nil {
			return err
		}
		m := nats.NewMsg(subj)
		m.Data = body
		m.Header = results.Headers(out.GetResultId(), meta, page)
		m.Header.Set(subject.HeaderRequestID, out.GetRequestId())
		m.Header.Set(subject.HeaderMsgID, subject.RequestNtfMsgID(out.GetModel(), out.GetRequestId(), page))
		n.markWebhook(m, out.GetNotifyUrl())
		batch = append(batch, m)
		if len(batch) == pagesInFlight || page == int(out.GetPages()) {
			if err := jsbatch.PublishEach(ctx, n.deps.JS, n.deps.Log, alreadyNotified, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}
