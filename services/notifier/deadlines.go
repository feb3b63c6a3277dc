package notifier

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
)

// deadlines holds a timer for every call this notifier knows that has not
// ended. A timer that fires queues the call in its lane, where
// expire ends it deadline_exceeded. The timers live in memory only: a new
// notifier schedules them again from tt_calls (scheduleAll).
type deadlines struct {
	mu      sync.Mutex
	timers  map[callKey]*time.Timer
	stopped bool
	firing  sync.WaitGroup
	fire    func(callKey)
}

func newDeadlines() *deadlines { return &deadlines{timers: map[callKey]*time.Timer{}} }

// start makes fired timers call fire.
func (d *deadlines) start(fire func(callKey)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fire = fire
}

// schedule sets k's timer to deadline (RFC 3339); a call without one, or
// one that cannot be read, has none.
func (d *deadlines) schedule(k callKey, deadline string) {
	at, err := time.Parse(time.RFC3339Nano, deadline)
	if err != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	if t := d.timers[k]; t != nil {
		t.Stop()
	}
	d.timers[k] = time.AfterFunc(time.Until(at), func() {
		d.mu.Lock()
		if d.stopped || d.fire == nil {
			d.mu.Unlock()
			return
		}
		delete(d.timers, k)
		fire := d.fire
		d.firing.Add(1)
		d.mu.Unlock()
		defer d.firing.Done()
		fire(k)
	})
}

// cancel drops k's timer: the call ended.
func (d *deadlines) cancel(k callKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t := d.timers[k]; t != nil {
		t.Stop()
		delete(d.timers, k)
	}
}

// stop drops every timer and waits for those firing.
func (d *deadlines) stop() {
	d.mu.Lock()
	d.stopped = true
	for k, t := range d.timers {
		t.Stop()
		delete(d.timers, k)
	}
	d.mu.Unlock()
	d.firing.Wait()
}

// scheduleAll schedules the deadline of every call in tt_calls that has
// not ended: the calls the previous notifier was timing.
func (n *Notifier) scheduleAll(ctx context.Context) error {
	keys, err := n.deps.Calls.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("list calls: %w", err)
	}
	defer func() { _ = keys.Stop() }()
	for key := range keys.Keys() {
		e, err := n.deps.Calls.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("read call %s: %w", key, err)
		}
		rec, err := decodeCall(e.Value())
		if err != nil {
			n.deps.Log.WarnContext(ctx, "skip unreadable call record", "key", key, "err", err)
			continue
		}
		if !rec.Terminal() {
			n.deadlines.schedule(callKey{rec.Model, rec.CallID}, rec.Deadline)
		}
	}
	return nil
}

// expire ends call k deadline_exceeded, if it has not ended and its
// deadline has passed. When that fails it is tried again a little later,
// through the lane again.
func (n *Notifier) expire(ctx context.Context, k callKey) {
	rec, rev, err := n.loadCall(ctx, k)
	if err == nil && rec != nil && !rec.Terminal() {
		if at, perr := time.Parse(time.RFC3339Nano, rec.Deadline); perr == nil && time.Now().Before(at) {
			n.deadlines.schedule(k, rec.Deadline)
			return
		}
		err = n.failCall(ctx, rec, rev, &calls.Error{
			Code: string(apierr.DeadlineExceeded), Message: "the call's deadline " + rec.Deadline + " passed",
		}, true)
	}
	if err != nil && ctx.Err() == nil {
		n.deps.Log.WarnContext(ctx, "call deadline; trying again", "call", k.kvKey(), "err", err)
		n.deadlines.schedule(k, stamp(time.Now().Add(maxBackoff)))
	}
}
