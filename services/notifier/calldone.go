package notifier

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/jsbatch"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// resultKey is where attempt a of a call writes its result.
func resultKey(k callKey, a int) string {
	return "calls/" + k.model + "/" + k.id + "/" + strconv.Itoa(a)
}

// finishCall ends a call with the result its worker reported done: the
// write-back first, when the function has an output, then the result's
// pages, then the record. Delivered again half way, it does each step
// again, which changes nothing that was done.
func (n *Notifier) finishCall(ctx context.Context, rec *calls.Record, rev uint64, ev *calls.Event, at time.Time) error {
	if n.deps.Blobs == nil {
		return errors.New("this notifier has no blob store to read call results from")
	}
	k := callKey{rec.Model, rec.CallID}
	key := resultKey(k, ev.Attempt)
	body, err := n.deps.Blobs.Get(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return n.failCall(ctx, rec, rev, badResult(ev, "wrote no result at "+key), false)
	}
	if err != nil {
		return fmt.Errorf("read call result %s: %w", key, err)
	}
	pageRows := rec.PageRows
	if pageRows < 1 {
		pageRows = calls.DefaultPageRows
	}
	pages, rows, err := resultPages(ev.ContentType, body, pageRows)
	if err == nil && rows != ev.Rows {
		err = fmt.Errorf("it holds %d rows, not the %d reported", rows, ev.Rows)
	}
	if err != nil {
		return n.failCall(ctx, rec, rev, badResult(ev, "returned a result that is not what it said: "+err.Error()), false)
	}
	if wb := rec.WriteBack; wb != nil {
		if err := n.writeBack(ctx, k, key, wb, ev.ContentType, rec.Principal); err != nil {
			return err
		}
	}
	if err := n.publishPages(ctx, k, pages, rows, ev.ContentType, rec.Principal); err != nil {
		return err
	}
	n.deadlines.cancel(k)
	a := attempt(rec, ev.Attempt)
	a.Worker, a.EndedAt, a.Error = ev.Worker, stamp(at), nil
	rec.State, rec.Worker, rec.Attempt, rec.Progress, rec.Error = calls.StateDone, ev.Worker, ev.Attempt, nil, nil
	rec.Result = &calls.ResultInfo{Pages: len(pages), Rows: rows, ContentType: ev.ContentType}
	rec.UpdatedAt = stamp(time.Now())
	return n.storeCall(ctx, rec, rev)
}

// badResult is the internal error of a call whose worker's result cannot
// be used.
func badResult(ev *calls.Event, what string) *calls.Error {
	return &calls.Error{Code: string(apierr.Internal), Message: fmt.Sprintf("worker %s (attempt %d) %s", ev.Worker, ev.Attempt, what)}
}

// writeBack applies the result to the function's output table: one append
// mutation whose body is the result, under the request id fn-<call id>,
// sent in the name of the call's principal.
// Its Nats-Msg-Id, and the model's own duplicate check, apply it once
// however often it is published.
func (n *Notifier) writeBack(ctx context.Context, k callKey, key string, wb *calls.WriteBack, ct, principal string) error {
	upload := "uploads/" + k.model + "/" + wb.RequestID
	if err := n.deps.Blobs.Link(ctx, key, upload); err != nil {
		return fmt.Errorf("upload the write-back of %s: %w", k.kvKey(), err)
	}
	m := nats.NewMsg(n.cfg.Names.MutBy(k.model, subject.OpAppend, principal))
	m.Header.Set(subject.HeaderMsgID, k.model+"."+wb.RequestID)
	m.Header.Set(subject.HeaderTable, wb.Table)
	m.Header.Set(subject.HeaderContentType, ct)
	m.Header.Set(subject.HeaderBodyRef, upload)
	if wb.Mode == function.ModeReplace {
		m.Header.Set(subject.HeaderMode, function.ModeReplace)
	}
	if _, err := n.deps.JS.PublishMsg(ctx, m, jetstream.WithExpectStream(n.cfg.Names.MutStream())); err != nil {
		return fmt.Errorf("publish the write-back of %s: %w", k.kvKey(), err)
	}
	return nil
}

// publishPages publishes a call's result as its terminal notification,
// one message per page, going on after the last page already published.
// Page 1 follows the progress notifications only, so that a call that
// ended otherwise gets no result.
func (n *Notifier) publishPages(ctx context.Context, k callKey, pages [][]byte, rows int64, ct, principal string) error {
	subj := n.cfg.Names.NtfRequest(k.model, k.id)
	first, after := 1, uint64(0)
	last, err := n.last(ctx, subj)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return err
	case last.Header.Get(subject.HeaderStatus) == subject.StatusProgress:
		after = last.Sequence
	case last.Header.Get(subject.HeaderStatus) == subject.StatusResult:
		page, err := strconv.Atoi(last.Header.Get(subject.HeaderPage))
		if err != nil {
			return fmt.Errorf("read %s: page %q", subj, last.Header.Get(subject.HeaderPage))
		}
		first = page + 1
	default:
		return nil // the call ended otherwise
	}
	var batch []*nats.Msg
	for page := first; page <= len(pages); page++ {
		m := nats.NewMsg(subj)
		m.Data = pages[page-1]
		m.Header.Set(subject.HeaderMsgID, subject.RequestNtfMsgID(k.model, k.id, page))
		if page == 1 {
			m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(after, 10))
		}
		m.Header.Set(subject.HeaderModel, k.model)
		m.Header.Set(subject.HeaderRequestID, k.id)
		m.Header.Set(subject.HeaderStatus, subject.StatusResult)
		m.Header.Set(subject.HeaderPage, strconv.Itoa(page))
		m.Header.Set(subject.HeaderPages, strconv.Itoa(len(pages)))
		m.Header.Set(subject.HeaderRows, strconv.FormatInt(rows, 10))
		m.Header.Set(subject.HeaderContentType, ct)
		setPrincipal(m, principal)
		batch = append(batch, m)
		if len(batch) == pagesInFlight || page == len(pages) {
			if err := jsbatch.PublishEach(ctx, n.deps.JS, n.deps.Log, alreadyNotified, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// dropResult deletes the result of an attempt that finished after its
// call had ended: nothing reads it.
func (n *Notifier) dropResult(ctx context.Context, rec *calls.Record, a int) {
	if n.deps.Blobs == nil || (rec.State == calls.StateDone && rec.Attempt == a) {
		return // the call's own result
	}
	key := resultKey(callKey{rec.Model, rec.CallID}, a)
	if err := n.deps.Blobs.DeleteAll(ctx, key); err != nil {
		n.deps.Log.WarnContext(ctx, "late call result not deleted", "key", key, "err", err)
	}
}
