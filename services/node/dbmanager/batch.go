package dbmanager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/teatree-dev/teatree/pkg/apierr"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// applyBatch runs the batch in one transaction. DuckDB aborts a transaction
// on an execution error, so a request that fails for its own reasons (or
// runs past its deadline) is set aside and the transaction is run again
// without it; the others commit. A batch that runs out of memory is applied
// in halves, each in a transaction of its own, down to single requests.
// runCtx is Run's: its end interrupts the running statement (errStopped).
func (w *writer) applyBatch(runCtx context.Context, reqs []*request, lastSeq uint64) ([]*teatreev1.RequestStatus, error) {
	failed := make([]error, len(reqs))
	for i, r := range reqs {
		failed[i] = r.invalid
	}
	return w.applyPart(runCtx, reqs, failed, lastSeq)
}

// applyPart applies reqs in one transaction that records lastSeq as
// applied, or in halves when that transaction runs out of memory.
func (w *writer) applyPart(runCtx context.Context, reqs []*request, failed []error, lastSeq uint64) ([]*teatreev1.RequestStatus, error) {
	for {
		// One time for the whole transaction: the notifications say what
		// the record says, also when they are replayed from it.
		now := time.Now().UTC()
		results, redo, err := w.tryBatch(runCtx, reqs, failed, lastSeq, now)
		if errors.Is(err, errSplit) {
			half := len(reqs) / 2
			w.m.log.InfoContext(runCtx, "batch out of memory; applying it in halves",
				"from_seq", reqs[0].seq, "to_seq", reqs[len(reqs)-1].seq)
			first, err := w.applyPart(runCtx, reqs[:half], failed[:half], reqs[half-1].seq)
			if err != nil {
				return nil, err
			}
			second, err := w.applyPart(runCtx, reqs[half:], failed[half:], lastSeq)
			if err != nil {
				return nil, err
			}
			return append(first, second...), nil
		}
		if err != nil {
			return nil, err
		}
		if !redo {
			return w.statuses(reqs, results, failed, now), nil
		}
	}
}

// errSplit asks applyPart to apply a batch that ran out of memory in
// smaller transactions.
var errSplit = errors.New("out of memory: split the batch")

// errStopped is the cause of a request context that Run's end cancelled.
var errStopped = errors.New("db-manager stopping")

// errRequestTimeout is the cause of a request context past its deadline.
var errRequestTimeout = errors.New("request timeout")

// underDeadline runs apply, a request's own statements, under a context
// that ends at the model's request timeout or when Run's ctx ends; either
// interrupts the running DuckDB statement. The connection stays open: the
// caller rolls the transaction back (see noInterrupt for why the rest never
// sees ctx's cancellation). Its error is errStopped when Run is ending,
// deadline_exceeded when the request's own deadline interrupted it
// (whatever DuckDB made of the interrupt), else apply's own.
func underDeadline[T any](runCtx context.Context, w *writer, apply func(context.Context) (T, error)) (T, error) {
	base, stopBase := context.WithCancelCause(context.WithoutCancel(runCtx))
	defer stopBase(nil)
	stopAfter := context.AfterFunc(runCtx, func() { stopBase(errStopped) })
	defer stopAfter()
	ctx, stopTimeout := context.WithTimeoutCause(base, w.m.requestTimeout(), errRequestTimeout)
	defer stopTimeout()
	res, err := apply(ctx)
	if err == nil {
		return res, nil
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errStopped):
		return res, errStopped
	case errors.Is(cause, errRequestTimeout):
		return res, apierr.Errorf(apierr.DeadlineExceeded, "the request ran longer than the model's request timeout, %s (spec.limits.request_timeout_ms)", w.m.requestTimeout())
	}
	return res, err
}

// outOfMemory is the failure of a request that runs out of memory alone.
func (w *writer) outOfMemory(err error) error {
	limit := w.m.cfg.MemoryLimit
	if limit == "" {
		limit = "DuckDB's default, 80% of RAM"
	}
	return apierr.Errorf(apierr.ResourceExhausted, "the request needs more memory than the model's memory limit (%s) allows: %v", limit, strings.TrimSpace(err.Error()))
}

func (w *writer) tryBatch(runCtx context.Context, reqs []*request, failed []error, lastSeq uint64, now time.Time) (results []applyResult, redo bool, err error) {
	ctx := noInterrupt(runCtx)
	if _, err := w.st.conn.ExecContext(ctx, "BEGIN TRANSACTION"); err != nil {
		return nil, false, nodeError{fmt.Errorf("begin: %w", err)}
	}
	rollback := func() {
		w.st.forgetColumns() // the transaction may have changed tables
		if _, err := w.st.conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
			w.m.log.WarnContext(ctx, "rollback", "err", err)
		}
	}
	results = make([]applyResult, len(reqs))
	for i := 0; i < len(reqs); {
		r := reqs[i]
		if failed[i] != nil {
			i++
			continue
		}
		if j := combinedRun(reqs, failed, i); j-i > 1 {
			res, err := underDeadline(runCtx, w, func(ctx context.Context) ([]applyResult, error) {
				return w.m.applyCombined(ctx, w.st, reqs[i:j])
			})
			if err != nil {
				rollback()
				if isNodeError(err) || errors.Is(err, errStopped) {
					return nil, false, fmt.Errorf("apply seq %d to %d: %w", r.seq, reqs[j-1].seq, err)
				}
				// Past the deadline or out of memory too: each request
				// alone then gets a deadline and a try of its own.
				for _, r := range reqs[i:j] {
					r.alone = true
				}
				return nil, true, nil
			}
			copy(results[i:j], res)
			i = j
			continue
		}
		res, err := underDeadline(runCtx, w, func(ctx context.Context) (applyResult, error) {
			return w.m.apply(ctx, w.st, r)
		})
		if err != nil {
			rollback()
			if isNodeError(err) || errors.Is(err, errStopped) {
				return nil, false, fmt.Errorf("apply seq %d: %w", r.seq, err)
			}
			if isOOM(err) {
				if len(reqs) > 1 {
					return nil, false, errSplit
				}
				err = w.outOfMemory(err)
			}
			failed[i] = err
			return nil, true, nil
		}
		results[i] = res
		i++
	}
	if err := w.record(ctx, reqs, results, failed, now, lastSeq); err != nil {
		rollback()
		return nil, false, nodeError{fmt.Errorf("record outcomes: %w", err)}
	}
	if _, err := w.st.conn.ExecContext(ctx, "COMMIT"); err != nil {
		rollback()
		return nil, false, nodeError{fmt.Errorf("commit: %w", err)}
	}
	for i, res := range results {
		if failed[i] == nil {
			w.noteChange(res)
		} else {
			// A failed request changes no table, but its outcome is in the
			// file: a version must still reach its seq, for min_seq readers.
			w.changed++
		}
	}
	w.requests += len(reqs)
	return results, false, nil
}

// combinedRun returns the end of the run of requests from i that can be
// applied as one append: combinable, to the same table, not yet failed and
// not set apart by an earlier failed attempt.
func combinedRun(reqs []*request, failed []error, i int) int {
	j := i
	for j < len(reqs) && failed[j] == nil && !reqs[j].alone && combinable(reqs[j]) && reqs[j].table == reqs[i].table {
		j++
	}
	return j
}
