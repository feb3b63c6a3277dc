package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// worker reads node's heartbeat.
func (h *harness) worker(node string) *teatreev1.Worker {
	h.t.Helper()
	e, err := h.workers.Get(context.Background(), node)
	require.NoError(h.t, err)
	w := &teatreev1.Worker{}
	require.NoError(h.t, wire.Unmarshal(e.Value(), w))
	return w
}

func TestHeartbeatWhileRunningAndLeasesAndHeartbeatGoneOnStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	stop := h.run("node-a")

	w := h.worker("node-a")
	require.Equal(t, "node-a", w.GetNode())
	require.Equal(t, []string{"duckdb"}, w.GetCapabilities())
	require.EqualValues(t, 2, w.GetSlots())
	require.EqualValues(t, 2, w.GetFreeSlots())
	_, err := time.Parse(time.RFC3339Nano, w.GetSeenAt())
	require.NoError(t, err)

	for _, m := range []string{"sales", "orders"} {
		h.createModel(m)
		h.grant(m, "node-a")
		h.publishSQL(m, m+"-1", "create table t (x int)")
		require.Equal(t, subject.StatusApplied, h.outcome(m, m+"-1").GetStatus())
	}
	require.Eventually(t, func() bool { return h.worker("node-a").GetFreeSlots() == 0 },
		10*time.Second, 20*time.Millisecond, "the heartbeat counts the hosted models")

	require.NoError(t, stop())
	for _, m := range []string{"sales", "orders"} {
		l, _, err := catalog.GetLease(ctx, h.owners, m)
		require.NoError(t, err)
		require.Nil(t, l, "%s: a stopped node gives its leases up at once", m)
	}
	// And its heartbeat, so that no dispatcher places a model on it.
	_, err = h.workers.Get(ctx, "node-a")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "a stopped node's heartbeat is gone at once")
}
