package dispatcher_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
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
	ctx := context.Background()
	h := newHarness(t, natsboot.Config{})
	h.createModel("trainer", "gpu")
	h.heartbeat("node-cpu", 8, "duckdb")
	h.run(dispatcher.Config{PlacementGrace: 300 * time.Millisecond})

	// A raw publisher's id carries the model prefix; the request id is
	// what follows it.
	seq := h.publish(h.names.Mut("trainer", subject.OpSQL), subject.MsgID("trainer", "r1"))
	ev, raw := h.event("trainer", subject.EventReject)
	requireFailed(t, ev, "trainer", subject.OpSQL, "r1", seq, apierr.Unavailable)
	require.Contains(t, ev.GetStatuses()[0].GetError().GetMessage(), "gpu")
	require.Equal(t, subject.RejectMsgID("trainer", seq, ev.GetEpoch()), raw.Header.Get(subject.HeaderMsgID))
	h.noOutcome("trainer")

	// The dispatcher wrote the rejection as the model's writer: its epoch
	// is the catalog's, so every earlier holder is fenced off.
	require.NotZero(t, ev.GetEpoch())
	spec, _, err := catalog.GetModel(ctx, h.models, "trainer")
	require.NoError(t, err)
	require.Equal(t, ev.GetEpoch(), spec.GetLeaseEpoch())
	require.Equal(t, ev.GetEpoch(), spec.GetEpochs()[len(spec.GetEpochs())-1].GetEpoch())

	// It let the model go, and left the message for the notifier to
	// delete once the rejection is committed.
	h.handled(seq)
	require.Nil(t, h.lease("trainer"))
	require.True(t, h.stored(seq), "the dispatcher does not delete a rejected request")
}

func TestLiveLeaseIsNotRejectedAfterTheGrace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, natsboot.Config{})
	h.createModel("trainer", "gpu")
	// A node this dispatcher has not seen a heartbeat of holds the model
	// (another dispatcher placed it): it applies the request.
	epoch, _, err := catalog.Grant(ctx, h.owners, "trainer", "node-gpu")
	require.NoError(t, err)
	seq := h.publish(h.names.Mut("trainer", subject.OpSQL), "r1")
	h.run(dispatcher.Config{PlacementGrace: time.Millisecond})

	h.handled(seq)
	h.noEvent("trainer", subject.EventReject)
	h.noOutcome("trainer")
	require.Equal(t, "node-gpu", h.lease("trainer").GetNode())
	require.True(t, h.stored(seq))
	spec, _, err := catalog.GetModel(ctx, h.models, "trainer")
	require.NoError(t, err)
	require.Less(t, spec.GetLeaseEpoch(), epoch, "nothing took the model over")
}

func TestRejectionWaitsForAnotherDispatchersRejection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, natsboot.Config{})
	h.createModel("trainer", "gpu")
	// Another dispatcher holds the model while it rejects a request.
	_, rev, err := catalog.Grant(ctx, h.owners, "trainer", dispatcher.RejectNode)
	require.NoError(t, err)
	h.run(dispatcher.Config{PlacementGrace: time.Millisecond})

	seq := h.publish(h.names.Mut("trainer", subject.OpSQL), "r2")
	// Not acked while the other dispatcher holds the model: nobody would
	// apply or reject it.
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), "a dispatcher holds the model") },
		15*time.Second, 20*time.Millisecond, "logs:\n%s", h.logs)
	h.noEvent("trainer", subject.EventReject)

	require.NoError(t, catalog.Release(ctx, h.owners, "trainer", rev))
	ev, _ := h.event("trainer", subject.EventReject)
	requireFailed(t, ev, "trainer", subject.OpSQL, "r2", seq, apierr.Unavailable)
	h.handled(seq)
}

func TestRejectionNamesTheEarlierRequestsStillWaiting(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, natsboot.Config{})
	h.createModel("trainer", "gpu")
	h.run(dispatcher.Config{PlacementGrace: 300 * time.Millisecond})

	// No notifier runs: the first rejection is never committed, and the
	// second one takes the model over from it, so it must name both.
	first := h.publish(h.names.Mut("trainer", subject.OpSQL), "r1")
	h.handled(first)
	second := h.publish(h.names.Mut("trainer", subject.OpAppend), "r2")
	h.handled(second)
	ev, _ := h.event("trainer", subject.EventReject)
	require.Len(t, ev.GetStatuses(), 2)
	for i, want := range []struct {
		id, op string
		seq    uint64
	}{{"r1", subject.OpSQL, first}, {"r2", subject.OpAppend, second}} {
		s := ev.GetStatuses()[i]
		require.Equal(t, want.id, s.GetRequestId())
		require.Equal(t, want.op, s.GetOp())
		require.Equal(t, want.seq, s.GetSeq())
		require.Equal(t, string(apierr.Unavailable), s.GetError().GetCode())
	}
	spec, _, err := catalog.GetModel(ctx, h.models, "trainer")
	require.NoError(t, err)
	require.Equal(t, ev.GetEpoch(), spec.GetLeaseEpoch())
}

func TestAppliedRequestIsNotRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, natsboot.Config{})
	h.createModel("trainer", "gpu")
	seq := h.publish(h.names.Mut("trainer", subject.OpSQL), "r1")
	// A node applied it and published a version, then went away.
	epoch, rev, err := catalog.Grant(ctx, h.owners, "trainer", "node-gpu")
	require.NoError(t, err)
	_, err = catalog.TakeOver(ctx, h.models, "trainer", epoch, "")
	require.NoError(t, err)
	v, err := catalog.ReserveVersion(ctx, h.models, "trainer", epoch)
	require.NoError(t, err)
	_, err = catalog.CommitVersion(ctx, h.models, "trainer", epoch, v, seq)
	require.NoError(t, err)
	require.NoError(t, catalog.Release(ctx, h.owners, "trainer", rev))
	h.run(dispatcher.Config{PlacementGrace: time.Millisecond})

	h.handled(seq)
	h.noEvent("trainer", subject.EventReject)
	h.noOutcome("trainer")
	require.True(t, h.stored(seq))
	require.Nil(t, h.lease("trainer"))
}

// A request whose only capable node is full waits for a slot, however long:
// unavailable means no live node can serve the model, and this one can as
// soon as it has room.
func TestFullNodeMakesRequestsWaitNotFail(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.heartbeat("node-full", 0, "duckdb")
	h.run(dispatcher.Config{PlacementGrace: 300 * time.Millisecond})

	h.publish(h.names.Mut("sales", subject.OpSQL), subject.MsgID("sales", "r1"))
	// A third delivery comes only after the second, past the grace, was
	// handled without a rejection (a rejection acknowledges the message).
	cons, err := h.js.Consumer(ctx, h.names.MutStream(), "dispatcher")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		info, err := cons.Info(ctx)
		return err == nil && info.Delivered.Consumer >= 3
	}, 30*time.Second, 50*time.Millisecond)
	h.noEvent("sales", subject.EventReject)

	h.heartbeat("node-full", 1, "duckdb")
	h.waitLease("sales", "node-full")
	h.noEvent("sales", subject.EventReject)
}
