package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

// holdLease grants model's lease to node and renews it, as a live node
// would, until the returned function is called (the node dies).
func holdLease(t *testing.T, h *harness, model, node string) (epoch uint64, die func() uint64) {
	t.Helper()
	ctx := context.Background()
	epoch, rev, err := catalog.Grant(ctx, h.owners, model, node)
	require.NoError(t, err)
	stop, stopped := make(chan struct{}), make(chan uint64)
	go func() {
		tick := time.NewTicker(h.boot.LeaseTTL / 5)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				stopped <- rev
				return
			case <-tick.C:
				if next, err := catalog.Renew(ctx, h.owners, model, &teatreev1.Lease{Node: node, Epoch: epoch}, rev); err == nil {
					rev = next
				}
			}
		}
	}()
	var once bool
	die = func() uint64 {
		if once {
			return 0
		}
		once = true
		close(stop)
		return <-stopped
	}
	t.Cleanup(func() { die() })
	return epoch, die
}

func TestExpiredLeaseIsPlacedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{LeaseTTL: time.Second})
	h.createModel("sales")
	h.heartbeat("node-b", 4, "duckdb")
	epoch, die := holdLease(t, h, "sales", "node-a")
	h.run(dispatcher.Config{})

	// While node-a renews its lease, a mutation leaves it where it is.
	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	h.handled(seq)
	require.Equal(t, "node-a", h.lease("sales").GetNode())

	// node-a dies: its lease expires, and the waiting mutation (beyond the
	// spec's applied_seq) gets the model placed again with no new message.
	die()
	l := h.waitLease("sales", "node-b")
	require.Greater(t, l.GetEpoch(), epoch)
	h.noOutcome("sales")
}

func TestReleasedLeaseIsPlacedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{LeaseTTL: time.Second})
	h.createModel("sales")
	h.heartbeat("node-b", 4, "duckdb")
	epoch, die := holdLease(t, h, "sales", "node-a")
	h.run(dispatcher.Config{})

	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	h.handled(seq)
	require.Equal(t, "node-a", h.lease("sales").GetNode())

	// node-a shuts down cleanly and gives its lease up so that the model
	// can move at once: the waiting mutation gets it placed again.
	rev := die()
	require.NoError(t, catalog.Release(context.Background(), h.owners, "sales", rev))
	l := h.waitLease("sales", "node-b")
	require.Greater(t, l.GetEpoch(), epoch)
}

func TestNothingWaitingIsNotPlacedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{LeaseTTL: time.Second})
	spec := h.createModel("sales")
	h.heartbeat("node-b", 4, "duckdb")
	_, die := holdLease(t, h, "sales", "node-a")
	h.run(dispatcher.Config{})

	// The model's node applied and published everything, then died.
	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	h.handled(seq)
	spec.AppliedSeq, spec.Version = seq, 1
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = h.models.Put(context.Background(), "sales", b)
	require.NoError(t, err)
	die()
	require.Eventually(t, func() bool { return h.lease("sales") == nil }, 10*time.Second, 20*time.Millisecond)

	// A few reconcile rounds (LeaseTTL/2 each) pass without a placement.
	require.Never(t, func() bool { return h.lease("sales") != nil }, 2*time.Second, 50*time.Millisecond)
}

func TestNodeThatJoinsLaterGetsTheModel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{LeaseTTL: time.Second})
	h.createModel("sales")
	_, die := holdLease(t, h, "sales", "node-a")
	h.run(dispatcher.Config{})

	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	h.handled(seq)
	die()
	require.Eventually(t, func() bool { return h.lease("sales") == nil }, 10*time.Second, 20*time.Millisecond)
	// Reconcile rounds pass with no node to place the model on.
	require.Never(t, func() bool { return h.lease("sales") != nil }, time.Second, 50*time.Millisecond)

	h.heartbeat("node-b", 1, "duckdb")
	h.waitLease("sales", "node-b")
}
