package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// The notifier is the only writer of tt_calls: every event of a compute
// call (queued by the dispatcher; started, progress, done, failed by its
// worker; cancelled by the gateway) comes through the call's lane, is
// applied to the call's record with a compare-and-set, and is notified.
// Every step is safe to run twice, since an event is delivered again when
// the notifier stops half way: the notifications and the write-back carry
// ids derived from the call, and a terminal record drops what comes later.

// handleCall applies one event of tt.evt.<model>.call.
func (n *Notifier) handleCall(ctx context.Context, msg jetstream.Msg) error {
	var ev calls.Event
	if err := json.Unmarshal(msg.Data(), &ev); err != nil {
		n.deps.Log.ErrorContext(ctx, "drop malformed call event", "err", err)
		return nil
	}
	ev.Model = eventModel(msg.Subject())
	if ev.CallID == "" {
		n.deps.Log.ErrorContext(ctx, "drop call event without a call id", "subject", msg.Subject())
		return nil
	}
	if n.deps.Calls == nil {
		return errors.New("this notifier has no tt_calls bucket to record calls in")
	}
	k := callKey{ev.Model, ev.CallID}
	rec, rev, err := n.loadCall(ctx, k)
	if err != nil {
		return err
	}
	if rec == nil {
		// An event of a call never queued: a call the dispatcher refused,
		// or a worker's event for a record that has expired.
		rec = &calls.Record{CallID: ev.CallID, Model: ev.Model, Function: ev.Function, Principal: ev.Principal, State: calls.StateQueued}
	}
	at := eventTime(msg)
	if ev.Event == calls.EventDone && rec.Terminal() {
		n.dropResult(ctx, rec, ev.Attempt)
		return nil
	}
	if rec.Terminal() {
		return nil // whatever comes after the end is dropped
	}
	switch ev.Event {
	case calls.EventQueued:
		if rev != 0 && rec.JobSeq != 0 {
			return nil // delivered again
		}
		queue(rec, &ev)
		n.deadlines.schedule(k, rec.Deadline)
	case calls.EventStarted:
		if ev.Attempt >= rec.Attempt {
			rec.State, rec.Worker, rec.Attempt, rec.Progress = calls.StateRunning, ev.Worker, ev.Attempt, nil
		}
		a := attempt(rec, ev.Attempt)
		a.Worker, a.StartedAt = ev.Worker, stamp(at)
	case calls.EventProgress:
		if err := n.publishProgress(ctx, msg, &ev); err != nil {
			return err
		}
		rec.Progress = &calls.Progress{Fraction: ev.Fraction, Message: ev.Message}
		if ev.Attempt >= rec.Attempt {
			rec.State, rec.Worker, rec.Attempt = calls.StateRunning, ev.Worker, ev.Attempt
		}
	case calls.EventDone:
		return n.finishCall(ctx, rec, rev, &ev, at)
	case calls.EventFailed:
		a := attempt(rec, ev.Attempt)
		a.Worker, a.EndedAt, a.Error = ev.Worker, stamp(at), ev.Error
		if a.Error == nil {
			a.Error = &calls.Error{Code: string(apierr.Internal), Message: fmt.Sprintf("worker %s failed attempt %d without saying why", ev.Worker, ev.Attempt)}
		}
		if ev.Final {
			return n.failCall(ctx, rec, rev, a.Error, false)
		}
		if ev.Attempt >= rec.Attempt {
			// The job waits for its next delivery.
			rec.State, rec.Progress = calls.StateQueued, nil
		}
	case calls.EventCancelled:
		msg := "the call was cancelled"
		if ev.Message != "" {
			msg += ": " + ev.Message
		}
		return n.failCall(ctx, rec, rev, &calls.Error{Code: string(apierr.Cancelled), Message: msg}, true)
	default:
		n.deps.Log.WarnContext(ctx, "drop call event of unknown kind", "event", ev.Event, "call", k.kvKey())
		return nil
	}
	rec.UpdatedAt = stamp(time.Now())
	return n.storeCall(ctx, rec, rev)
}

// queue fills rec with the queued event's job.
func queue(rec *calls.Record, ev *calls.Event) {
	rec.Route, rec.JobSeq = ev.Route, ev.JobSeq
	if j := ev.Job; j != nil {
		rec.Function, rec.Handler, rec.Args, rec.MaxAttempts = j.Function, j.Handler, j.Args, j.MaxAttempts
		rec.Version, rec.QueuedAt, rec.Deadline, rec.PageRows = j.Input.Version, j.QueuedAt, j.Deadline, j.PageRows
		rec.Principal = j.Principal
	}
	if ev.Function != "" {
		rec.Function = ev.Function
	}
	if o := ev.Output; o != nil {
		rec.WriteBack = &calls.WriteBack{RequestID: calls.WriteBackID(rec.CallID), Table: o.Table, Mode: o.Mode}
	}
}

// publishProgress notifies a running call's progress, unless the call's
// subject holds its terminal notification already.
func (n *Notifier) publishProgress(ctx context.Context, msg jetstream.Msg, ev *calls.Event) error {
	subj := n.cfg.Names.NtfRequest(ev.Model, ev.CallID)
	last, open, err := n.openSeq(ctx, subj)
	if err != nil || !open {
		return err
	}
	body, err := json.Marshal(calls.Progress{Fraction: ev.Fraction, Message: ev.Message})
	if err != nil {
		return err
	}
	id := msg.Headers().Get(subject.HeaderMsgID)
	if id == "" {
		meta, err := msg.Metadata()
		if err != nil {
			return err
		}
		id = fmt.Sprintf("%s.%s.%d.progress.seq%d", ev.Model, ev.CallID, ev.Attempt, meta.Sequence.Stream)
	}
	m := nats.NewMsg(subj)
	m.Data = body
	m.Header.Set(subject.HeaderMsgID, "progress."+id)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(last, 10))
	m.Header.Set(subject.HeaderModel, ev.Model)
	m.Header.Set(subject.HeaderRequestID, ev.CallID)
	m.Header.Set(subject.HeaderStatus, subject.StatusProgress)
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	return n.pub.Publish(ctx, []*nats.Msg{m})
}

// openSeq reports whether subj may still get a notification of its call,
// and the sequence a new one must follow: none yet (0) or only progress
// (the last one's). A failed status or a result page there ends it.
func (n *Notifier) openSeq(ctx context.Context, subj string) (uint64, bool, error) {
	last, err := n.last(ctx, subj)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return 0, true, nil
	case err != nil:
		return 0, false, err
	case last.Header.Get(subject.HeaderStatus) == subject.StatusProgress:
		return last.Sequence, true, nil
	default:
		return 0, false, nil
	}
}

// eventTime is when the event was published, the same however often it
// is delivered.
func eventTime(msg jetstream.Msg) time.Time {
	if meta, err := msg.Metadata(); err == nil {
		return meta.Timestamp
	}
	return time.Now()
}

// stamp is the contract's time format: RFC 3339 in UTC, with nanoseconds.
func stamp(at time.Time) string { return at.UTC().Format(time.RFC3339Nano) }
