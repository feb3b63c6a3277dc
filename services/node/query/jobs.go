package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// jobsDurable is the consumer on TT_CALL that every executor pulls durable
// query jobs from; a job is tried at most jobsMaxDeliver times.
const (
	jobsDurable    = "duckdb"
	jobsMaxDeliver = 5
)

// runJobs pulls durable query jobs from tt.call.duckdb.<model>, one at a
// time and only while a slot is free, so that a busy node leaves jobs to
// the others. A job's pages are stored and announced on
// tt.evt.<model>.result; the notifier publishes them.
func (e *Executor) runJobs(ctx context.Context, running *sync.WaitGroup) error {
	names := e.cfg.Names
	cons, err := e.deps.JS.CreateOrUpdateConsumer(ctx, names.CallStream(), jetstream.ConsumerConfig{
		Durable:       jobsDurable,
		Description:   "durable query jobs for executors with the duckdb capability",
		FilterSubject: names.CallCapability(subject.CapabilityDuckDB),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// A job runs at most Timeout; past twice that its executor is gone.
		AckWait:    2*e.cfg.Timeout + 30*time.Second,
		MaxDeliver: jobsMaxDeliver,
	})
	if err != nil {
		return fmt.Errorf("query jobs: %w", err)
	}
	for ctx.Err() == nil {
		freeSlot, err := e.acquireSlot(ctx)
		if err != nil {
			return nil
		}
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		batch, err := cons.Fetch(1, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			freeSlot()
			if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				e.deps.Log.WarnContext(ctx, "fetch query job", "err", err)
				time.Sleep(time.Second)
			}
			continue
		}
		got := false
		for msg := range batch.Messages() { // ends by fctx at the latest
			got = true
			running.Add(1)
			go func() {
				defer running.Done()
				defer freeSlot()
				e.job(ctx, msg)
			}()
		}
		cancel()
		if !got {
			freeSlot()
		}
	}
	return nil
}

// job runs one durable query and announces its outcome; the job is acked
// once the outcome is in TT_EVT, so a crash before runs it again and the
// notifier's message ids keep its notifications single.
func (e *Executor) job(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Nak()
		return
	}
	model, ok := e.cfg.Names.ParseCall(msg.Subject(), subject.CapabilityDuckDB)
	if !ok {
		// No model token to notify on: nobody can be told, so drop it.
		e.deps.Log.WarnContext(ctx, "drop query job on a malformed subject", "subject", msg.Subject())
		_ = msg.Term()
		return
	}
	id, err := subject.RequestFromMsgID(model, msg.Headers().Get(subject.HeaderMsgID))
	if err != nil {
		id = subject.SeqRequestID(meta.Sequence.Stream)
	}
	out := &teatreev1.QueryOutcome{Model: model, RequestId: id, NotifyUrl: msg.Headers().Get(subject.HeaderNotifyURL)}
	q := &teatreev1.Query{}
	if meta.NumDelivered >= jobsMaxDeliver {
		// Tried as often as it will be: end it rather than drop it.
		setError(out, apierr.Errorf(apierr.Internal, "the job did not finish in %d attempts", jobsMaxDeliver))
	} else if err := subject.ValidateModel(model); err != nil {
		setError(out, err)
	} else if err := wire.Unmarshal(msg.Data(), q); err != nil {
		setError(out, apierr.Errorf(apierr.InvalidArgument, `query body: want {"sql": "...", "params": [...], "format": "json"}: %v`, err))
	} else if res, err := e.run(ctx, model, q, true); err != nil {
		setError(out, err)
	} else {
		out.ResultId, out.Pages, out.Rows = res.ID, int32(res.Meta.Pages), res.Meta.Rows
		out.Version, out.ContentType = res.Meta.Version, res.Meta.ContentType
	}
	if ctx.Err() != nil {
		_ = msg.Nak() // shutting down: another executor takes it
		return
	}
	data, err := proto.Marshal(out)
	if err == nil {
		ev := nats.NewMsg(e.cfg.Names.Evt(model, subject.EventResult))
		ev.Data = data
		ev.Header.Set(subject.HeaderMsgID, subject.ResultMsgID(model, id))
		_, err = e.deps.JS.PublishMsg(ctx, ev)
	}
	if err != nil {
		e.deps.Log.WarnContext(ctx, "announce query job", "model", model, "request_id", id, "err", err)
		_ = msg.NakWithDelay(time.Second)
		return
	}
	_ = msg.Ack()
}

func setError(out *teatreev1.QueryOutcome, err error) {
	code, msg := apierr.From(err)
	out.Error = &teatreev1.Error{Code: string(code), Message: msg}
}
