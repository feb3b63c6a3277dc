package dispatcher_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

func TestPlacesOnTheCapableWorkerWithMostFreeSlots(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.heartbeat("node-small", 1, "duckdb")
	h.heartbeat("node-big", 5, "duckdb", "python")
	h.heartbeat("node-python", 9, "python")
	h.heartbeat("node-full", 0, "duckdb")
	h.run(dispatcher.Config{})

	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	l := h.waitLease("sales", "node-big")
	require.NotZero(t, l.GetEpoch())
	h.handled(seq)
	h.noOutcome("sales")
}

func TestPlacementNeedsEveryCapability(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("trainer", "duckdb", "gpu")
	h.heartbeat("node-cpu", 8, "duckdb")
	h.heartbeat("node-gpu", 1, "duckdb", "gpu")
	h.run(dispatcher.Config{})

	h.publish(h.names.Mut("trainer", subject.OpSQL), "r1")
	h.waitLease("trainer", "node-gpu")
}

func TestNoCapableNodeEndsUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("trainer", "gpu")
	h.heartbeat("node-cpu", 8, "duckdb")
	h.run(dispatcher.Config{PlacementGrace: 300 * time.Millisecond})

	seq := h.publish(h.names.Mut("trainer", subject.OpSQL), "r1")
	ev, _ := h.outcome("trainer")
	requireFailed(t, ev, "trainer", subject.OpSQL, "r1", seq, apierr.Unavailable)
	require.Contains(t, ev.GetStatuses()[0].GetError().GetMessage(), "gpu")
	require.Nil(t, h.lease("trainer"))
}
