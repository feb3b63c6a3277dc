package node

import (
	"context"
	"fmt"
	"time"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A node's leases are renewed all at once by its heartbeat in tt_workers:
// a lease naming the node holds while the node's newest heartbeat is
// younger than the lease TTL (and the worker TTL, if that is shorter: see
// ttl), so holding a thousand models costs one KV write per heartbeat, not
// a thousand. A dispatcher takes back the leases of a node whose heartbeat
// is older than that. The node measures the same age on its own clock from
// before it sent the heartbeat, so it stops trusting its leases no later
// than a dispatcher would give them away.

// ttl is how long the node's leases outlive its newest heartbeat; the node
// heartbeats three times in it.
func (n *Node) ttl() time.Duration { return min(n.cfg.LeaseTTL, n.cfg.WorkerTTL) }

// heartbeat writes the node's heartbeat: its capabilities and free slots,
// and, by being there, that its leases still hold.
func (n *Node) heartbeat(ctx context.Context) error {
	sent := time.Now()
	n.mu.Lock()
	free := n.cfg.Slots - len(n.models)
	if n.leaving {
		free = 0
	}
	n.mu.Unlock()
	b, err := wire.Marshal(&teatreev1.Worker{
		Node: n.cfg.ID, Capabilities: n.cfg.Capabilities, Slots: int32(n.cfg.Slots),
		FreeSlots: int32(free), SeenAt: sent.UTC().Format(time.RFC3339Nano),
	})
	if err != nil {
		return err
	}
	if _, err := n.deps.Workers.Put(ctx, n.cfg.ID, b); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.beat.IsZero() && sent.Sub(n.beat) >= n.ttl() {
		n.lapse = true
	}
	if sent.After(n.beat) {
		n.beat = sent
	}
	return nil
}

// resumed reports, once, that the heartbeat is live again after a lapse
// (a heartbeat a ttl or more after the one before).
func (n *Node) resumed() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	lapse := n.lapse
	n.lapse = false
	return lapse
}

// live fails with catalog.ErrLeaseLost once the newest heartbeat is older
// than the ttl: the node was paused or cut off long enough for its
// leases to be taken back. It is part of every db-manager's fence, so a
// node that resumes publishes nothing before it knows which leases are
// still its own.
func (n *Node) live() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.liveLocked()
}

func (n *Node) liveLocked() error {
	if age := time.Since(n.beat); age >= n.ttl() {
		return fmt.Errorf("node %s: last heartbeat %s ago, lease ttl %s: %w", n.cfg.ID, age.Round(time.Millisecond), n.ttl(), catalog.ErrLeaseLost)
	}
	return nil
}

// dropAll stops every db-manager after a lapse, without releasing its
// lease: a dispatcher may have granted it to another node, or it may still
// be this node's, to resume once the heartbeat is live again.
func (n *Node) dropAll(ctx context.Context) {
	n.mu.Lock()
	defer n.mu.Unlock()
	// Every heartbeat period while it lasts, as a failed heartbeat is:
	// some db-managers may have stopped already, their fence refused.
	n.log.WarnContext(ctx, "heartbeat lapsed past the lease ttl; stopping every db-manager", "models", len(n.models), "lease_ttl", n.ttl())
	for model, h := range n.models {
		n.detachLocked(model, h)
	}
}
