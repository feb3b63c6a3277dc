package notifier

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// Events are processed in lanes: every event of a model goes to the lane
// its model hashes to, and a lane handles its events one at a time, in the
// order they were delivered. So a model's notifications keep the order of
// its events, while a slow or failing model holds up only the models that
// share its lane. A compute call's events need order only among
// themselves: they go to the lane of <model>.<call id>, so that one
// model's calls are notified in parallel.

// laneQueue bounds the events waiting in one lane. When a lane is full,
// dispatching waits for it: memory stays bounded whatever the backlog.
const laneQueue = 32

// maxBackoff bounds the wait between two attempts, well within ackWait.
const maxBackoff = 5 * time.Second

type lanes struct {
	n     *Notifier
	queue []chan laneItem
	wg    sync.WaitGroup
}

// laneItem is an event, or a call whose deadline timer fired: it runs in
// the call's lane so that it is ordered with the call's events.
type laneItem struct {
	msg     jetstream.Msg
	expired callKey
}

func (n *Notifier) startLanes(ctx context.Context) *lanes {
	l := &lanes{n: n, queue: make([]chan laneItem, n.cfg.Lanes)}
	for i := range l.queue {
		q := make(chan laneItem, laneQueue)
		l.queue[i] = q
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for it := range q {
				// After ctx ends the events left are not acknowledged:
				// JetStream delivers them to the next notifier, which
				// schedules the deadlines again from tt_calls.
				switch {
				case ctx.Err() != nil:
				case it.msg != nil:
					n.process(ctx, it.msg)
				default:
					n.expire(ctx, it.expired)
				}
			}
		}()
	}
	return l
}

// dispatch queues msg in its lane (see laneKey), waiting while the lane is full.
func (l *lanes) dispatch(ctx context.Context, msg jetstream.Msg) {
	l.enqueue(ctx, laneKey(msg), laneItem{msg: msg})
}

// laneKey is what orders msg: its model, or for a compute call's event
// <model>.<call id>.
func laneKey(msg jetstream.Msg) string {
	model := eventModel(msg.Subject())
	if lastToken(msg.Subject()) != subject.EventCall {
		return model
	}
	var ev struct {
		CallID string `json:"call_id"`
	}
	if json.Unmarshal(msg.Data(), &ev) != nil || ev.CallID == "" {
		return model // malformed: handle drops it in any lane
	}
	return callKey{model: model, id: ev.CallID}.kvKey()
}

// enqueue queues it in the lane of key (see laneKey), waiting while the
// lane is full.
func (l *lanes) enqueue(ctx context.Context, key string, it laneItem) {
	select {
	case l.queue[laneOf(key, len(l.queue))] <- it:
	case <-ctx.Done():
	}
}

// stop ends the lanes once they have drained their queues.
func (l *lanes) stop() {
	for _, q := range l.queue {
		close(q)
	}
	l.wg.Wait()
}

// laneOf is the lane of a key.
func laneOf(model string, lanes int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(model))
	return int(h.Sum32() % uint32(lanes))
}

// eventModel is the model of tt.evt.<model>.<kind>: the token before the
// kind, whatever the prefix.
func eventModel(subj string) string {
	rest := subj[:max(0, strings.LastIndexByte(subj, '.'))]
	return rest[strings.LastIndexByte(rest, '.')+1:]
}

// process handles msg, trying again in place while it fails, so that the
// model's later events wait behind it. JetStream is told the event is in
// progress before each wait, so that it does not deliver it again
// meanwhile. After MaxAttempts the event goes to TT_DEAD and is
// acknowledged: the lane moves on.
func (n *Notifier) process(ctx context.Context, msg jetstream.Msg) {
	backoff := n.cfg.RetryBackoff
	for attempt := 1; ; attempt++ {
		err := n.handle(ctx, msg)
		if err == nil {
			_ = msg.Ack()
			return
		}
		if ctx.Err() != nil {
			return
		}
		if attempt >= n.cfg.MaxAttempts {
			n.deadLetter(ctx, msg, err, attempt)
			return
		}
		n.deps.Log.WarnContext(ctx, "notify; trying again", "subject", msg.Subject(), "attempt", attempt, "err", err)
		_ = msg.InProgress()
		if !wait(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// wait waits d or until ctx ends; false when ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
