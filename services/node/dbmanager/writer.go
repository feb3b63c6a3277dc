package dbmanager

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/outcome"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// writer is the state of one Run: the open file and the sequences it has
// applied and announced.
type writer struct {
	m  *Manager
	st *store
	// applied is the stream sequence applied up to, as committed.
	applied uint64
	// eventsSeq is the sequence up to which outcome events are known to be
	// in TT_EVT, as committed; published is the same, as known in memory.
	eventsSeq, published uint64
	requests             int
	// Since the last snapshot: how many requests changed data, and which
	// tables (nil with allTables).
	changed   int
	tables    map[string]bool
	allTables bool
	lastSnap  time.Time
	// now is set when a reader asked for a version at once (min_seq).
	now bool
	// notified holds the outcomes clients were told before this epoch
	// (nil when nobody else may have told them anything).
	notified *notified
}

func (w *writer) loop(ctx context.Context, msgs <-chan jetstream.Msg, pumpErr <-chan error, now <-chan struct{}) error {
	w.lastSnap = time.Now()
	var timer <-chan time.Time
	if w.changed > 0 {
		// Changes not in a version yet: ask the snapshot policy without
		// waiting for a mutation, which may never come.
		timer = time.After(0)
	}
	// The idle timer restarts with every batch; nil without a timeout.
	var idle *time.Timer
	var idleC <-chan time.Time
	if w.m.cfg.IdleTimeout > 0 {
		idle = time.NewTimer(w.m.cfg.IdleTimeout)
		defer idle.Stop()
		idleC = idle.C
	}
	for {
		var first jetstream.Msg
		select {
		case <-ctx.Done():
			return nil
		case <-idleC:
			if w.settled(len(msgs)) {
				return ErrIdle
			}
			// Not yet: publish what is left, then look again soon.
			idle.Reset(min(w.m.cfg.IdleTimeout, 100*time.Millisecond))
		case msg, ok := <-msgs:
			if !ok {
				if err := <-pumpErr; ctx.Err() == nil {
					return fmt.Errorf("consume: %w", err)
				}
				return nil
			}
			first = msg
		case reply := <-w.m.cfg.Close:
			ok := w.settled(len(msgs))
			reply <- ok
			if ok {
				return ErrIdle
			}
		case <-timer:
			timer = nil
		case <-now:
			w.now = true
		}
		if first != nil {
			batch := []jetstream.Msg{first}
			size := len(first.Data())
		drain:
			for len(batch) < w.m.cfg.MaxBatchMessages && size < w.m.cfg.MaxBatchBytes {
				select {
				case msg, ok := <-msgs:
					if !ok {
						break drain
					}
					batch = append(batch, msg)
					size += len(msg.Data())
				default:
					break drain
				}
			}
			if err := w.m.cfg.Budget.startWork(ctx); err != nil {
				return nil // ctx ended: Run stops
			}
			err := w.commit(ctx, batch)
			w.m.cfg.Budget.endWork()
			if err != nil {
				if errors.Is(err, errStopped) {
					// Interrupted mid-statement by the end of ctx: the
					// batch was rolled back and the next Run applies it.
					return nil
				}
				return err
			}
			if idle != nil {
				idle.Reset(w.m.cfg.IdleTimeout)
			}
			if w.m.cfg.Activity != nil {
				w.m.cfg.Activity()
			}
		}
		wait, err := w.maybeSnapshot(ctx)
		if err != nil {
			return err
		}
		if wait > 0 && timer == nil {
			timer = time.After(wait)
		}
	}
}

// settled reports whether the model can be closed: no mutation is waiting
// and every applied one is in a published version, so that the dispatcher,
// which compares the stream with the catalog's applied_seq, places the model
// again exactly when a new mutation comes. Requests that failed changed no
// data but still advanced applied: settled asks for a version for them.
func (w *writer) settled(waiting int) bool {
	if waiting > 0 || w.changed > 0 || w.m.snap.busy() || w.m.snap.unpublished() || w.published < w.applied {
		return false
	}
	if w.m.snap.publishedSeq() < w.applied {
		w.changed, w.now = 1, true
		return false
	}
	return true
}

// commit applies a batch in one transaction, then announces its outcomes.
// Only the requests' own statements end with ctx (see underDeadline); the
// bookkeeping around them runs to its end (see noInterrupt).
func (w *writer) commit(runCtx context.Context, msgs []jetstream.Msg) error {
	ctx := noInterrupt(runCtx)
	reqs := make([]*request, 0, len(msgs))
	for _, msg := range msgs {
		r, err := parseRequest(w.m.cfg.Names, msg)
		if err != nil {
			return err
		}
		if w.m.rejected[r.seq] {
			r.invalid = w.m.unavailable() // its client was told so
		}
		reqs = append(reqs, r)
	}
	defer func() {
		for _, r := range reqs {
			if r.decoded != nil {
				r.decoded.release()
			}
		}
	}()
	todo, err := w.dropDuplicates(ctx, reqs)
	if err != nil {
		return err
	}
	if err := w.notified.failures(ctx, todo); err != nil {
		return err
	}
	lastSeq := reqs[len(reqs)-1].seq
	w.m.log.DebugContext(ctx, "applying batch", "from_seq", reqs[0].seq, "to_seq", lastSeq, "requests", len(todo))
	statuses, err := w.applyBatch(runCtx, todo, lastSeq)
	if err != nil {
		return err
	}
	w.applied = lastSeq
	w.eventsSeq = w.published
	w.dropUploads(ctx, reqs)
	if len(statuses) == 0 {
		w.published = lastSeq
		return nil
	}
	var notify map[string]string
	for _, r := range todo {
		if r.notifyURL != "" {
			if notify == nil {
				notify = map[string]string{}
			}
			notify[r.id] = r.notifyURL
		}
	}
	if err := w.announce(ctx, statuses, notify, false); err != nil {
		return err
	}
	w.published = lastSeq
	return nil
}

// dropUploads deletes the uploaded bodies of a committed batch: its
// outcomes are recorded, so no retry will read them again.
func (w *writer) dropUploads(ctx context.Context, reqs []*request) {
	for _, r := range reqs {
		if r.upload == "" {
			continue
		}
		if err := w.m.deps.Blobs.DeleteAll(ctx, r.upload); err != nil {
			w.m.log.WarnContext(ctx, "delete upload", "key", r.upload, "err", err)
		}
	}
}

// dropDuplicates removes requests whose id the model has already seen: a
// retry that came after JetStream's duplicate window, or twice in one batch.
func (w *writer) dropDuplicates(ctx context.Context, reqs []*request) ([]*request, error) {
	ids := make([]string, len(reqs))
	for i, r := range reqs {
		ids[i] = r.id
	}
	rows, err := w.st.conn.QueryContext(ctx, seenQuery, ids)
	if err != nil {
		return nil, nodeError{fmt.Errorf("look up request ids: %w", err)}
	}
	seen := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, nodeError{err}
		}
		seen[id] = true
	}
	if err := rows.Close(); err != nil {
		return nil, nodeError{err}
	}
	todo := reqs[:0:0]
	for _, r := range reqs {
		if seen[r.id] {
			w.m.log.InfoContext(ctx, "dropped duplicate request", "request_id", r.id, "seq", r.seq)
			continue
		}
		seen[r.id] = true
		todo = append(todo, r)
	}
	return todo, nil
}

// seenQuery finds which of a list of request ids _tt_requests has; DuckDB
// answers = ANY of a list from the index on request_id.
const seenQuery = "SELECT request_id FROM _tt_requests WHERE request_id = ANY(?)"

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

// record writes each request's outcome and the new sequences in the
// batch's transaction. The outcomes go through DuckDB's appender, which
// appends in the connection's open transaction: binding nine parameters
// per request to an INSERT cost more than applying small requests.
func (w *writer) record(ctx context.Context, reqs []*request, results []applyResult, failed []error, now time.Time, lastSeq uint64) error {
	err := w.st.withDriverConn(func(c *duckdb.Conn) error {
		a, err := duckdb.NewAppender(c, "", "", "_tt_requests")
		if err != nil {
			return err
		}
		for i, r := range reqs {
			if failed[i] != nil {
				code, msg := apierr.From(failed[i])
				err = a.AppendRow(r.id, r.seq, r.op, subject.StatusFailed, nil, string(code), msg, now, nullable(r.notifyURL))
			} else {
				err = a.AppendRow(r.id, r.seq, r.op, subject.StatusApplied, results[i].rows, nil, nil, now, nullable(r.notifyURL))
			}
			if err != nil {
				a.Close()
				return err
			}
		}
		return a.Close()
	})
	if err != nil {
		return err
	}
	if w.requests+len(reqs) > 2*w.m.cfg.RecentRequests {
		// Keep the newest RecentRequests outcomes; the trim runs in the
		// transaction so the table never loses an outcome it needs.
		if _, err := w.st.conn.ExecContext(ctx, `DELETE FROM _tt_requests WHERE seq < (
			SELECT min(seq) FROM (SELECT seq FROM _tt_requests ORDER BY seq DESC LIMIT ?))`, w.m.cfg.RecentRequests); err != nil {
			return err
		}
		w.requests = w.m.cfg.RecentRequests - len(reqs)
	}
	_, err = w.st.conn.ExecContext(ctx, "UPDATE _tt_state SET applied_seq = ?, events_seq = ?, epoch = ?", lastSeq, w.published, w.m.cfg.Epoch)
	return err
}

func (w *writer) countRequests(ctx context.Context) error {
	if err := w.st.conn.QueryRowContext(ctx, "SELECT count(*) FROM _tt_requests").Scan(&w.requests); err != nil {
		return fmt.Errorf("count requests: %w", err)
	}
	return nil
}

func (w *writer) statuses(reqs []*request, results []applyResult, failed []error, at time.Time) []*teatreev1.RequestStatus {
	out := make([]*teatreev1.RequestStatus, len(reqs))
	for i, r := range reqs {
		if failed[i] != nil {
			out[i] = outcome.Failed(w.m.cfg.Model, r.id, r.op, r.seq, at, failed[i])
		} else {
			out[i] = outcome.Applied(w.m.cfg.Model, r.id, r.op, r.seq, at, results[i].rows)
		}
	}
	return out
}

func (w *writer) noteChange(res applyResult) {
	w.changed++
	if res.allTables {
		w.allTables = true
		return
	}
	if w.tables == nil {
		w.tables = map[string]bool{}
	}
	for _, t := range res.tables {
		w.tables[t] = true
	}
}

// announce publishes the outcomes of a batch for the notifier and waits
// until JetStream has them.
func (w *writer) announce(ctx context.Context, statuses []*teatreev1.RequestStatus, notify map[string]string, replay bool) error {
	ev := &teatreev1.Outcomes{Model: w.m.cfg.Model, Epoch: w.m.cfg.Epoch, Statuses: statuses, NotifyUrls: notify, Replay: replay}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(w.m.cfg.Names.Evt(w.m.cfg.Model, subject.EventOutcomes))
	msg.Data = data
	msg.Header.Set(subject.HeaderMsgID, subject.OutcomesMsgID(w.m.cfg.Model, statuses[len(statuses)-1].GetSeq(), w.m.cfg.Epoch))
	if err := w.m.publishEvent(ctx, msg); err != nil {
		return fmt.Errorf("publish outcomes: %w", err)
	}
	return nil
}

// replayOutcomes re-announces the outcomes committed after the last
// sequence known to be announced: a crash may have come between a commit
// and its event. The notifier drops those it has already notified.
func (w *writer) replayOutcomes(ctx context.Context) error {
	rows, err := w.st.conn.QueryContext(ctx, `SELECT request_id, seq, op, status, rows_affected, error_code, error_message, applied_at, notify_url
		FROM _tt_requests WHERE seq > ? ORDER BY seq`, w.eventsSeq)
	if err != nil {
		return fmt.Errorf("read outcomes to replay: %w", err)
	}
	defer rows.Close()
	var statuses []*teatreev1.RequestStatus
	notify := map[string]string{}
	for rows.Next() {
		s := &teatreev1.RequestStatus{Model: w.m.cfg.Model}
		var rowsAffected *int64
		var code, message, notifyURL *string
		var at time.Time
		if err := rows.Scan(&s.RequestId, &s.Seq, &s.Op, &s.Status, &rowsAffected, &code, &message, &at, &notifyURL); err != nil {
			return fmt.Errorf("read outcomes to replay: %w", err)
		}
		if notifyURL != nil {
			notify[s.RequestId] = *notifyURL
		}
		s.RowsAffected = rowsAffected
		s.AppliedAt = at.UTC().Format(time.RFC3339Nano)
		if code != nil {
			s.Error = &teatreev1.Error{Code: *code, Message: deref(message)}
		}
		statuses = append(statuses, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read outcomes to replay: %w", err)
	}
	w.published = w.eventsSeq
	if len(statuses) > 0 {
		if err := w.announce(ctx, statuses, notify, true); err != nil {
			return err
		}
		w.m.log.InfoContext(ctx, "replayed outcomes", "count", len(statuses))
	}
	w.published = w.applied
	return nil
}

// nullable is NULL for an empty string.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
