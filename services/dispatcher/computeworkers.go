package dispatcher

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/natsboot"
)

// computeWorkers are the compute workers' heartbeats in tt_compute, as a
// watch of the bucket last showed them.
type computeWorkers struct {
	mu   sync.Mutex
	seen map[string]heartbeatSeen
	// changed closes at every put or delete, waking those that wait.
	changed chan struct{}
}

type heartbeatSeen struct {
	hb calls.Heartbeat
	at time.Time
}

func newComputeWorkers() *computeWorkers {
	return &computeWorkers{seen: map[string]heartbeatSeen{}, changed: make(chan struct{})}
}

func (cw *computeWorkers) onEntry(e jetstream.KeyValueEntry) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	var hb calls.Heartbeat
	if e.Operation() != jetstream.KeyValuePut || json.Unmarshal(e.Value(), &hb) != nil {
		delete(cw.seen, e.Key())
	} else {
		cw.seen[e.Key()] = heartbeatSeen{hb: hb, at: e.Created()}
	}
	close(cw.changed)
	cw.changed = make(chan struct{})
}

// serves reports whether a live worker has the handler and every one of
// capabilities. A worker is live while its entry exists; the bucket's TTL
// removes an entry without telling its watchers, so an entry older than
// that TTL counts as gone.
func (cw *computeWorkers) serves(handler string, capabilities []string) (bool, <-chan struct{}) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	for _, s := range cw.seen {
		if time.Since(s.at) >= natsboot.ComputeWorkerTTL || !slices.Contains(s.hb.Handlers, handler) {
			continue
		}
		if !slices.ContainsFunc(capabilities, func(c string) bool { return !slices.Contains(s.hb.Capabilities, c) }) {
			return true, nil
		}
	}
	return false, cw.changed
}

// wait waits until a live worker serves handler with capabilities, or
// until; it reports whether one does.
func (cw *computeWorkers) wait(ctx context.Context, handler string, capabilities []string, until time.Time) bool {
	timer := time.NewTimer(time.Until(until))
	defer timer.Stop()
	// An entry ageing out changes nothing in the bucket: look again now
	// and then as well.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		ok, changed := cw.serves(handler, capabilities)
		if ok {
			return true
		}
		select {
		case <-changed:
		case <-tick.C:
		case <-timer.C:
			ok, _ := cw.serves(handler, capabilities)
			return ok
		case <-ctx.Done():
			return false
		}
	}
}
