package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A lease in tt_owners is never renewed: it holds while its node's newest
// heartbeat in tt_workers is younger than the lease TTL. Any lease also
// holds for a lease TTL after it was written: a grant half done (no epoch
// yet), a dispatcher's rejection (no heartbeat), a node whose heartbeat
// this dispatcher has not seen yet. A lease that does not hold is stale:
// the dispatcher takes it back (deletes it at its revision) before it
// places the model again, which stops the stale node's db-manager if it
// still runs; the new holder's epoch fences off anything it publishes.

// leaseSeen is a model's lease as the dispatcher last saw it written.
type leaseSeen struct {
	node  string // "" once released, or when it cannot be read
	epoch uint64
	at    time.Time // when it was written
}

func (d *Dispatcher) onLease(e jetstream.KeyValueEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		// A released or taken-back lease: the model is looked at at once,
		// since a mutation may have come just before.
		d.owners[e.Key()] = leaseSeen{}
		select {
		case d.released <- e.Key():
		default: // the next tick looks at it
		}
		return
	}
	ls, _ := seen(e)
	d.owners[e.Key()] = ls
}

// seen is a lease entry as written; a lease that cannot be read names no
// node, so it never holds.
func seen(e jetstream.KeyValueEntry) (leaseSeen, *teatreev1.Lease) {
	l, err := catalog.DecodeLease(e.Value())
	if err != nil {
		return leaseSeen{at: e.Created()}, nil
	}
	return leaseSeen{node: l.GetNode(), epoch: l.GetEpoch(), at: e.Created()}, l
}

// holdsLocked reports whether a lease still binds: see the top of this
// file. RejectNode never heartbeats, so a dispatcher's lease holds only
// while it is young.
func (d *Dispatcher) holdsLocked(ls leaseSeen) bool {
	if ls.node == "" {
		return false
	}
	if time.Since(ls.at) < d.cfg.LeaseTTL {
		return true
	}
	ws, ok := d.workers[ls.node]
	return ok && ls.epoch != 0 && d.liveLocked(ws)
}

// ownedLocked reports whether a node applies the mutations of a lease's
// model. A dispatcher holds a model only while it rejects one request: no
// owner applies what comes meanwhile, so its mutations keep being looked
// at (handle and place wait for the release).
func (d *Dispatcher) ownedLocked(ls leaseSeen) bool {
	return ls.node != RejectNode && d.holdsLocked(ls)
}

// hasOwner reports whether a node holds model's lease and heartbeats.
func (d *Dispatcher) hasOwner(model string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	ls, ok := d.owners[model]
	return ok && d.ownedLocked(ls)
}

// takeBack deletes model's lease if it is stale, at the revision it was
// read at, and returns the lease if it still holds (nil when there is none
// now).
func (d *Dispatcher) takeBack(ctx context.Context, model string) (*teatreev1.Lease, error) {
	e, err := d.deps.Owners.Get(ctx, model)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read lease of %s: %w", model, err)
	}
	ls, l := seen(e)
	d.mu.Lock()
	holds := d.holdsLocked(ls)
	d.mu.Unlock()
	if holds {
		return l, nil
	}
	if err := catalog.Release(ctx, d.deps.Owners, model, e.Revision()); err != nil {
		return nil, fmt.Errorf("take back the stale lease of %s: %w", model, err)
	}
	d.deps.Log.InfoContext(ctx, "took back a stale lease: its node stopped heartbeating", "model", model, "node", ls.node, "epoch", ls.epoch)
	return nil, nil
}

// acquire grants model's lease to node, taking a stale lease back first;
// catalog.ErrLeaseHeld while the lease holds.
func (d *Dispatcher) acquire(ctx context.Context, model, node string) (epoch, rev uint64, err error) {
	epoch, rev, err = catalog.Grant(ctx, d.deps.Owners, model, node)
	if !errors.Is(err, catalog.ErrLeaseHeld) {
		return epoch, rev, err
	}
	l, err := d.takeBack(ctx, model)
	if err != nil {
		return 0, 0, err
	}
	if l != nil {
		return 0, 0, catalog.ErrLeaseHeld
	}
	return catalog.Grant(ctx, d.deps.Owners, model, node)
}
