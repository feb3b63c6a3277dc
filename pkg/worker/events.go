package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// report publishes ev on tt.evt.<model>.call with the contract's message
// id, <model>.<call id>.<attempt>.<event> (progress: .progress.<n>), so
// that a republished event is dropped as a duplicate.
func (w *Worker) report(ctx context.Context, job *calls.Job, attempt int, ev calls.Event, n int) error {
	ev.Model, ev.CallID, ev.Attempt, ev.Worker = job.Model, job.CallID, attempt, w.cfg.ID
	body, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	id := job.Model + "." + job.CallID + "." + strconv.Itoa(attempt) + "." + ev.Event
	if ev.Event == calls.EventProgress {
		id += "." + strconv.Itoa(n)
	}
	msg := &nats.Msg{Subject: w.cfg.Names.Evt(job.Model, subject.EventCall), Data: body, Header: nats.Header{}}
	msg.Header.Set(subject.HeaderMsgID, id)
	msg.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	if _, err := w.deps.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("report %s of call %s.%s: %w", ev.Event, job.Model, job.CallID, err)
	}
	return nil
}
