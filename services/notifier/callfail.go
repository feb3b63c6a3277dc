package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/outcome"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// failCall ends a call failed with cause: its failed status notification
// (unless the call's subject holds a terminal one), its record as a dead
// letter, then the record. stopJob, for a call cancelled or past its
// deadline, also takes its job off the queue and tells a worker running
// it to stop. Each step is safe to do again, so the record is written
// last: until it is, the event is tried again.
func (n *Notifier) failCall(ctx context.Context, rec *calls.Record, rev uint64, cause *calls.Error, stopJob bool) error {
	k := callKey{rec.Model, rec.CallID}
	now := time.Now()
	subj := n.cfg.Names.NtfRequest(k.model, k.id)
	after, open, err := n.openSeq(ctx, subj)
	if err != nil {
		return err
	}
	if open {
		s := outcome.Failed(k.model, k.id, subject.OpCall, 0, now, apierr.New(apierr.Code(cause.Code), cause.Message))
		s.Principal = rec.Principal
		m, err := n.statusMsg(s)
		if err != nil {
			return err
		}
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, fmt.Sprint(after))
		if err := n.pub.Publish(ctx, []*nats.Msg{m}); err != nil {
			return err
		}
	}
	if stopJob {
		if err := n.stopJob(ctx, rec); err != nil {
			return err
		}
	}
	n.deadlines.cancel(k)
	rec.State, rec.Error, rec.Progress, rec.UpdatedAt = calls.StateFailed, cause, nil, stamp(now)
	if err := n.deadCall(ctx, rec); err != nil {
		return err
	}
	return n.storeCall(ctx, rec, rev)
}

// stopJob deletes the call's job from TT_CALL, if it is still there, and
// tells the worker running it, if any, to stop.
func (n *Notifier) stopJob(ctx context.Context, rec *calls.Record) error {
	if rec.JobSeq != 0 {
		if err := n.callStream.DeleteMsg(ctx, rec.JobSeq); err != nil {
			// A job a worker acknowledged, or deleted before, is gone:
			// the server says only that deleting it failed.
			if _, gerr := n.callStream.GetMsg(ctx, rec.JobSeq); !errors.Is(gerr, jetstream.ErrMsgNotFound) {
				return fmt.Errorf("delete the job of %s.%s: %w", rec.Model, rec.CallID, err)
			}
		}
	}
	if err := n.deps.JS.Conn().Publish(n.cfg.Names.WorkCancel(rec.Model, rec.CallID), nil); err != nil {
		return fmt.Errorf("cancel the work of %s.%s: %w", rec.Model, rec.CallID, err)
	}
	return nil
}

// deadCall publishes a failed call's record, with every attempt's error,
// as its dead letter on tt.dead.<model>, once.
func (n *Notifier) deadCall(ctx context.Context, rec *calls.Record) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	m := nats.NewMsg(n.cfg.Names.Dead(rec.Model))
	m.Data = b
	m.Header.Set(subject.HeaderMsgID, "dead."+rec.Model+".call."+rec.CallID)
	m.Header.Set(subject.HeaderModel, rec.Model)
	m.Header.Set(subject.HeaderRequestID, rec.CallID)
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	if _, err := n.deps.JS.PublishMsg(ctx, m, jetstream.WithExpectStream(n.cfg.Names.DeadStream())); err != nil {
		return fmt.Errorf("dead letter of %s.%s: %w", rec.Model, rec.CallID, err)
	}
	return nil
}
