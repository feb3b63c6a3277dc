package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
)

var (
	// errCancelled is the cause of a job's context when its call is
	// cancelled through tt.work.cancel.<model>.<call id>.
	errCancelled = apierr.New(apierr.Cancelled, "the call was cancelled")
	// errStopping is the cause when the worker stops before the job ends.
	errStopping = errors.New("the worker stopped")
)

// run runs one delivery of a job, under ctx (which ends only when the
// worker gives up on its running jobs), and settles the message.
func (w *Worker) run(ctx context.Context, msg jetstream.Msg) {
	log := w.deps.Log.With("subject", msg.Subject())
	meta, err := msg.Metadata()
	if err != nil {
		log.ErrorContext(ctx, "job without metadata", "err", err)
		_ = msg.Term()
		return
	}
	attempt := int(meta.NumDelivered)
	var job calls.Job
	if err := json.Unmarshal(msg.Data(), &job); err != nil || job.Model == "" || job.CallID == "" {
		// Nothing to report to: without a call id no one waits for it.
		log.ErrorContext(ctx, "job that is not one; dropping it", "err", err, "seq", meta.Sequence.Stream)
		_ = msg.Term()
		return
	}
	log = log.With("model", job.Model, "call", job.CallID, "attempt", attempt)
	j := &jobRun{w: w, msg: msg, job: &job, attempt: attempt, log: log}
	j.run(ctx)
}

// jobRun is one attempt of a job.
type jobRun struct {
	w       *Worker
	msg     jetstream.Msg
	job     *calls.Job
	attempt int
	log     *slog.Logger
}

func (j *jobRun) run(ctx context.Context) {
	job := j.job
	// The job is settled even when the worker has given up on it.
	settle := context.WithoutCancel(ctx)
	deadline, err := time.Parse(time.RFC3339Nano, job.Deadline)
	if err != nil {
		j.fail(ctx, apierr.Errorf(apierr.Internal, "job deadline %q: %v", job.Deadline, err), true)
		return
	}
	if !time.Now().Before(deadline) {
		j.fail(ctx, apierr.Errorf(apierr.DeadlineExceeded, "the deadline %s passed before attempt %d started", job.Deadline, j.attempt), true)
		return
	}
	maxAttempts := max(job.MaxAttempts, 1)
	if j.attempt > maxAttempts {
		j.fail(ctx, apierr.Errorf(apierr.Internal, "did not finish in %d attempts", maxAttempts), true)
		return
	}
	handler, ok := j.w.cfg.Handlers[job.Handler]
	if !ok {
		j.fail(ctx, apierr.Errorf(apierr.Internal, "worker %s has no handler %q", j.w.cfg.ID, job.Handler), true)
		return
	}
	if err := j.w.report(ctx, job, j.attempt, calls.Event{Event: calls.EventStarted}, 0); err != nil {
		// Unreported, the attempt would run unseen: let it be delivered again.
		j.log.WarnContext(ctx, "report started", "err", err)
		_ = j.msg.NakWithDelay(time.Second)
		return
	}
	key := job.Model + "." + job.CallID
	j.w.setRunning(key, true)
	defer j.w.setRunning(key, false)

	hctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	hctx, cancelDeadline := context.WithDeadline(hctx, deadline)
	defer cancelDeadline()
	sub, err := j.w.nc.Subscribe(j.w.cfg.Names.WorkCancel(job.Model, job.CallID), func(*nats.Msg) { cancel(errCancelled) })
	if err != nil {
		j.log.WarnContext(ctx, "subscribe to cancels", "err", err)
		_ = j.msg.NakWithDelay(time.Second)
		return
	}
	defer sub.Unsubscribe()
	stopProgress := j.keepInProgress(hctx)
	defer stopProgress()

	// The input stays open until the result is written: an Arrow output
	// reads from its DB.
	in, err := openInput(hctx, j)
	if err == nil {
		defer in.close()
		var out Output
		if out, err = j.handle(hctx, handler, in); err == nil {
			if err = j.deliver(hctx, out); err == nil {
				return
			}
		}
	}
	switch cause := context.Cause(hctx); {
	case errors.Is(cause, errCancelled):
		j.fail(settle, errCancelled, true)
	case errors.Is(cause, errStopping):
		j.giveBack(settle)
	case errors.Is(cause, context.DeadlineExceeded):
		j.fail(settle, apierr.Errorf(apierr.DeadlineExceeded, "the call's deadline %s passed while attempt %d ran", job.Deadline, j.attempt), true)
	default:
		code, _ := apierr.From(err)
		j.fail(settle, err, j.attempt >= maxAttempts || code == apierr.InvalidArgument || code == apierr.PermissionDenied)
	}
}

// handle runs the handler on the job's input; a panic fails the attempt.
func (j *jobRun) handle(ctx context.Context, h Handler, in *Input) (out Output, err error) {
	defer func() {
		if r := recover(); r != nil {
			out.Release()
			out, err = Output{}, apierr.Errorf(apierr.Internal, "handler %s panicked: %v", j.job.Handler, r)
		}
	}()
	return h(ctx, in)
}

// deliver writes the result of the attempt, reports done and acks the job.
func (j *jobRun) deliver(ctx context.Context, out Output) error {
	defer out.Release()
	res, ok := j.result()
	if !ok {
		return apierr.Errorf(apierr.Internal, "the job names no result URL for attempt %d", j.attempt)
	}
	written, err := writeResult(ctx, j.w.cfg.TempDir, res.URL, out)
	if err != nil {
		return fmt.Errorf("write the result of attempt %d: %w", j.attempt, err)
	}
	ev := calls.Event{Event: calls.EventDone, ContentType: written.contentType, Rows: written.rows, Bytes: written.bytes}
	if err := j.w.report(ctx, j.job, j.attempt, ev, 0); err != nil {
		return err
	}
	if err := j.msg.DoubleAck(ctx); err != nil {
		// The result is written and reported: a redelivery is the
		// notifier's to drop.
		j.log.WarnContext(ctx, "ack a done job", "err", err)
	}
	return nil
}

// result is where this attempt writes its result.
func (j *jobRun) result() (calls.Result, bool) {
	for _, r := range j.job.Results {
		if r.Attempt == j.attempt {
			return r, r.URL != ""
		}
	}
	if i := j.attempt - 1; i < len(j.job.Results) && j.job.Results[i].Attempt == 0 {
		return j.job.Results[i], j.job.Results[i].URL != ""
	}
	return calls.Result{}, false
}

// fail reports the attempt failed and settles the job: terminated when
// final, else back to the queue after the contract's backoff.
func (j *jobRun) fail(ctx context.Context, err error, final bool) {
	ev := calls.Event{Event: calls.EventFailed, Error: calls.ErrorOf(err), Final: final}
	j.log.InfoContext(ctx, "attempt failed", "err", err, "final", final)
	if rerr := j.w.report(ctx, j.job, j.attempt, ev, 0); rerr != nil {
		// Unreported, the failure is known to no one: deliver it again.
		j.log.WarnContext(ctx, "report failed", "err", rerr)
		_ = j.msg.NakWithDelay(time.Second)
		return
	}
	if final {
		_ = j.msg.Term()
		return
	}
	_ = j.msg.NakWithDelay(time.Duration(calls.Backoff(j.attempt)) * time.Second)
}

// giveBack returns the job of a stopping worker to the queue at once,
// for another worker; the attempt is reported failed, not final.
func (j *jobRun) giveBack(ctx context.Context) {
	ev := calls.Event{Event: calls.EventFailed, Error: &calls.Error{Code: string(apierr.Unavailable),
		Message: fmt.Sprintf("worker %s stopped while attempt %d ran", j.w.cfg.ID, j.attempt)}}
	if err := j.w.report(ctx, j.job, j.attempt, ev, 0); err != nil {
		j.log.WarnContext(ctx, "report failed", "err", err)
	}
	_ = j.msg.Nak()
}

// keepInProgress sends +WPI every 10 s (a third of ack_wait when that is
// shorter) until it is stopped, so the job is not delivered again while it
// runs.
func (j *jobRun) keepInProgress(ctx context.Context) func() {
	every := min(inProgressEvery, j.w.cfg.AckWait/3)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				if err := j.msg.InProgress(); err != nil {
					j.log.WarnContext(ctx, "send in progress", "err", err)
				}
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
