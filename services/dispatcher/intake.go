package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Intake of compute calls: the durable consumer of tt.call.fn.* and how
// many calls are looked at at once. A call waits for a worker or a version
// (up to the placement grace, or its deadline) with its message in
// progress, so a few slow calls do not hold up the others.
const (
	intakeDurable    = "fn"
	intakeConcurrent = 64
	intakeAckWait    = 30 * time.Second
)

// runIntake queues the compute calls of tt.call.fn.<model>[.<principal>] as jobs for
// workers until ctx ends; stop waits for the calls being looked at.
func (d *Dispatcher) runIntake(ctx context.Context) (stop func(), err error) {
	names := d.cfg.Names
	cw := newComputeWorkers()
	if err := d.watch(ctx, d.deps.Compute, cw.onEntry); err != nil {
		return nil, err
	}
	cons, err := natsboot.TakeConsumer(ctx, d.deps.JS, names.CallStream(), jetstream.ConsumerConfig{
		Durable:       intakeDurable,
		Description:   "compute calls, checked and queued for workers by the dispatcher",
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       intakeAckWait,
		FilterSubject: names.CallIntakeAll(),
		MaxAckPending: intakeConcurrent,
	})
	if err != nil {
		return nil, fmt.Errorf("intake consumer: %w", err)
	}
	var running sync.WaitGroup
	slots := make(chan struct{}, intakeConcurrent)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		running.Add(1)
		go func() {
			defer running.Done()
			defer func() { <-slots }()
			d.intake(ctx, cw, msg)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("intake consume: %w", err)
	}
	return func() {
		cc.Stop()
		<-cc.Closed()
		running.Wait()
	}, nil
}

// intake settles one call: queued as a job, failed for good, or left for a
// redelivery after a passing error.
func (d *Dispatcher) intake(ctx context.Context, cw *computeWorkers, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	model, principal, ok := d.cfg.Names.ParseCallBy(msg.Subject())
	if subject.ValidateModel(model) != nil {
		// No model to notify on: nobody can be told.
		d.deps.Log.WarnContext(ctx, "drop compute call on a malformed subject", "subject", msg.Subject())
		_ = msg.Term()
		return
	}
	// A bad call id fails the call, which is then named by its sequence,
	// as a mutation with a bad request id is.
	callID := subject.SeqRequestID(meta.Sequence.Stream)
	var badID error
	if h := msg.Headers().Get(subject.HeaderMsgID); h != "" {
		if id, err := subject.RequestFromMsgID(model, h); err != nil {
			badID = err
		} else {
			callID = id
		}
	}
	// Waiting for a worker or a version takes longer than the ack wait.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		tick := time.NewTicker(intakeAckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
				_ = msg.InProgress()
			}
		}
	}()
	err = badID
	if !ok {
		// A bad principal token: the call is named by its model still.
		err = apierr.Errorf(apierr.InvalidArgument, "subject %q: want %s", msg.Subject(), d.cfg.Names.CallBy(model, "")+"[.<principal>]")
	}
	if err == nil {
		err = d.queueCall(wctx, cw, msg, meta, model, callID, principal)
	}
	var ae *apierr.Error
	switch {
	case ctx.Err() != nil:
		_ = msg.Nak() // stopping: the next leader looks at it
		return
	case errors.As(err, &ae):
		err = d.failCall(ctx, model, callID, principal, err)
	}
	if err != nil {
		d.deps.Log.WarnContext(ctx, "compute call", "model", model, "call_id", callID, "err", err)
		_ = msg.NakWithDelay(retryDelay)
		return
	}
	_ = msg.Ack()
}

// queueCall checks the call, waits for a worker and a version, and queues
// its job and the queued event. An *apierr.Error ends the call; any other
// error is worth another try.
func (d *Dispatcher) queueCall(ctx context.Context, cw *computeWorkers, msg jetstream.Msg, meta *jetstream.MsgMetadata, model, callID, principal string) error {
	var call calls.Call
	if err := json.Unmarshal(msg.Data(), &call); err != nil {
		return apierr.Errorf(apierr.InvalidArgument, `compute call body: want {"function": "name", "args": {...}}: %v`, err)
	}
	if call.Function == "" {
		return apierr.New(apierr.InvalidArgument, `compute call body: "function" is missing`)
	}
	if call.DeadlineMS < 0 || call.PageRows < 0 {
		return apierr.New(apierr.InvalidArgument, "compute call body: deadline_ms and page_rows must not be negative")
	}
	if _, _, err := catalog.GetModel(ctx, d.deps.Models, model); err != nil {
		return err
	}
	def, err := function.NewStore(d.deps.Functions).Get(ctx, model, call.Function)
	if err != nil {
		return err
	}
	if def.Kind != function.KindCompute {
		return apierr.Errorf(apierr.InvalidArgument, "function %s of model %s is a SQL function: call it with %s", def.Name, model, d.cfg.Names.Mut(model, subject.OpCall))
	}
	args, err := function.CheckArgs(def, call.Args)
	if err != nil {
		return err
	}
	if !cw.wait(ctx, def.Handler, def.Capabilities, meta.Timestamp.Add(d.cfg.PlacementGrace)) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return apierr.Errorf(apierr.Unavailable, "no live worker has the handler %s and the capabilities %s that function %s needs",
			def.Handler, strings.Join(slices.Sorted(slices.Values(def.Capabilities)), ", "), def.Name)
	}
	ttl := def.Deadline()
	if call.DeadlineMS > 0 {
		ttl = time.Duration(call.DeadlineMS) * time.Millisecond
	}
	// Finding a version counts against the call's deadline, from when the
	// call was sent.
	spec, err := d.versionFor(ctx, model, call.MinSeq, meta.Timestamp.Add(ttl))
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	job := &calls.Job{CallID: callID, Model: model, Function: def.Name, Handler: def.Handler, Args: args,
		MaxAttempts: def.Attempts(), Deadline: now.Add(ttl).Format(time.RFC3339Nano), QueuedAt: now.Format(time.RFC3339Nano),
		PageRows: call.PageRows, Principal: principal}
	if job.PageRows == 0 {
		job.PageRows = calls.DefaultPageRows
	}
	if job.Input, err = d.input(ctx, spec, ttl); err != nil {
		return err
	}
	for _, r := range def.Reads {
		rs, err := d.newestVersion(ctx, r)
		if err != nil {
			return err
		}
		in, err := d.input(ctx, rs, ttl)
		if err != nil {
			return err
		}
		job.Reads = append(job.Reads, in)
	}
	if job.Results, err = d.results(ctx, model, callID, job.MaxAttempts, ttl); err != nil {
		return err
	}
	route := function.Route(def.Handler, def.Capabilities)
	ack, err := d.publishJSON(ctx, d.cfg.Names.Call(route, model), subject.CallJobMsgID(model, callID), job)
	if err != nil {
		return fmt.Errorf("queue job: %w", err)
	}
	ev := &calls.Event{Event: calls.EventQueued, Model: model, CallID: callID, Job: job, Route: route,
		JobSeq: ack.Sequence, Function: def.Name}
	if def.Output != nil {
		ev.Output = &calls.Output{Table: def.Output.Table, Mode: def.Output.Mode}
	}
	if _, err := d.publishJSON(ctx, d.cfg.Names.Evt(model, subject.EventCall), subject.CallEventMsgID(model, callID, calls.EventQueued), ev); err != nil {
		return fmt.Errorf("announce queued call: %w", err)
	}
	return nil
}

// failCall ends a call principal sent with a final failed event; the
// notifier makes it the call's terminal notification.
func (d *Dispatcher) failCall(ctx context.Context, model, callID, principal string, cause error) error {
	ev := &calls.Event{Event: calls.EventFailed, Model: model, CallID: callID, Error: calls.ErrorOf(cause), Final: true, Principal: principal}
	_, err := d.publishJSON(ctx, d.cfg.Names.Evt(model, subject.EventCall), subject.CallEventMsgID(model, callID, "0."+calls.EventFailed), ev)
	if err != nil {
		return fmt.Errorf("announce failed call: %w", err)
	}
	d.deps.Log.InfoContext(ctx, "compute call failed", "model", model, "call_id", callID, "cause", cause)
	return nil
}

// publishJSON publishes v as JSON on subj with msgID and waits for the
// stream's ack.
func (d *Dispatcher) publishJSON(ctx context.Context, subj, msgID string, v any) (*jetstream.PubAck, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := nats.NewMsg(subj)
	out.Data = data
	out.Header.Set(subject.HeaderMsgID, msgID)
	out.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	return d.deps.JS.PublishMsg(ctx, out)
}
