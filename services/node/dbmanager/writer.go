package dbmanager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
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
	// While draining, no batch is taken from msgs (nil).
	drain, in, draining := w.m.cfg.Drain, msgs, false
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
		case <-drain:
			drain, in, draining, w.now = nil, nil, true, true
		case msg, ok := <-in:
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
		if draining {
			// The mutations left waiting are the next holder's.
			if w.settled(0) {
				return ErrIdle
			}
			// Look again soon: the version may be in flight.
			timer = time.After(20 * time.Millisecond)
			continue
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
	if f := w.m.cfg.announceFault; f != nil {
		if err := f(); err != nil {
			return err
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
