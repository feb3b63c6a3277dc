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
	wire := wireEvent{Event: ev}
	switch ev.Event {
	case calls.EventFailed:
		wire.Final = &ev.Final
	case calls.EventProgress:
		wire.Fraction = &ev.Fraction
	}
	body, err := json.Marshal(wire)
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

// wireEvent is an event as the contract lists its fields: calls.Event
// leaves out a false final and a zero fraction, which a failed and a
// progress event always carry. Its own fields shadow the embedded ones.
type wireEvent struct {
	calls.Event
	Final    *bool    `json:"final,omitempty"`
	Fraction *float64 `json:"fraction,omitempty"`
}
