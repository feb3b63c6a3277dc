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
	"github.com/teatree-dev/teatree/services/dispatcher"
)

// holdLease grants model's lease to node, which heartbeats with no free
// slot until the returned function is called (the node dies); die returns
// the lease's revision.
func holdLease(t *testing.T, h *harness, model, node string) (epoch uint64, die func() uint64) {
	t.Helper()
	epoch, rev, err := catalog.Grant(context.Background(), h.owners, model, node)
	require.NoError(t, err)
	stop := h.keepAlive(node, 0)
	return epoch, func() uint64 {
		stop()
		return rev
	}
}

func TestLeaseOfANodeThatStoppedHeartbeatingIsPlacedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{LeaseTTL: time.Second})
	h.createModel("sales")
	h.keepAlive("node-b", 4, "duckdb")
	epoch, die := holdLease(t, h, "sales", "node-a")
	h.run(dispatcher.Config{})

	// While node-a heartbeats, its lease holds well past a lease TTL after
	// the grant (reconcile rounds come every LeaseTTL/2), and a mutation
	// leaves it where it is.
	require.Eventually(t, func() bool {
		e, err := h.owners.Get(context.Background(), "sales")
		return err == nil && time.Since(e.Created()) > 3*h.boot.LeaseTTL
	}, 10*time.Second, 20*time.Millisecond)
	require.Equal(t, epoch, h.lease("sales").GetEpoch())
	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	h.handled(seq)
	require.Equal(t, "node-a", h.lease("sales").GetNode())

	// node-a dies: its heartbeat lapses, so its lease is taken back, and
	// the waiting mutation (beyond the spec's applied_seq) gets the model
	// placed again with no new message.
	die()
	l := h.waitLease("sales", "node-b")
	require.Greater(t, l.GetEpoch(), epoch)
	h.noOutcome("sales")
}

func TestReleasedLeaseIsPlacedAgain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{LeaseTTL: time.Second})
	h.createModel("sales")
	h.keepAlive("node-b", 4, "duckdb")
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
	h.keepAlive("node-b", 4, "duckdb")
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

	h.keepAlive("node-b", 1, "duckdb")
	h.waitLease("sales", "node-b")
}
