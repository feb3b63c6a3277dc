package dispatcher_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

func TestPlacesOnTheSmallestSizeClassThatFits(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("mid", "duckdb", "size:medium")
	h.createModel("mid2", "duckdb", "size:medium")
	h.createModel("plain", "duckdb")
	h.heartbeat("node-small", 50, "duckdb", "size:small")
	h.heartbeat("node-medium", 1, "duckdb", "size:medium")
	h.heartbeat("node-large", 5, "duckdb", "size:large")
	h.heartbeat("node-xlarge", 9, "duckdb", "size:xlarge")
	h.run(dispatcher.Config{})

	h.publish(h.names.Mut("mid", subject.OpSQL), "r1")
	h.waitLease("mid", "node-medium")
	// node-medium is full now: the next smallest class that fits.
	h.publish(h.names.Mut("mid2", subject.OpSQL), "r2")
	h.waitLease("mid2", "node-large")
	// A model that asks for no class goes to the smallest too.
	h.publish(h.names.Mut("plain", subject.OpSQL), "r3")
	h.waitLease("plain", "node-small")
}

func TestNeverPlacesOnASmallerSizeClass(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("big", "duckdb", "size:large")
	h.heartbeat("node-small", 50, "duckdb", "size:small")
	h.heartbeat("node-medium", 50, "duckdb", "size:medium")
	h.heartbeat("node-none", 50, "duckdb")
	h.run(dispatcher.Config{PlacementGrace: 300 * time.Millisecond})

	seq := h.publish(h.names.Mut("big", subject.OpSQL), subject.MsgID("big", "r1"))
	ev, _ := h.event("big", subject.EventReject)
	requireFailed(t, ev, "big", subject.OpSQL, "r1", seq, apierr.Unavailable)
	require.Contains(t, ev.GetStatuses()[0].GetError().GetMessage(), "size:large")
}

func TestUnknownSizeClassIsInvalidAtCreate(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	_, err := catalog.CreateModel(context.Background(), h.models, h.mut, &teatreev1.ModelSpec{Id: "m", Capabilities: []string{"duckdb", "size:huge"}})
	var ae *apierr.Error
	require.ErrorAs(t, err, &ae)
	require.Equal(t, apierr.InvalidArgument, ae.Code)
	require.Contains(t, ae.Message, "small, medium, large, xlarge")
}

func TestPrefersTheNodeThatHeldTheModelLast(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	// node-b held the model (its takeover is in the catalog) and let it
	// go; the dispatcher starts afresh, as after a failover, and knows it
	// only from the catalog.
	epoch, rev, err := catalog.Grant(ctx, h.owners, "sales", "node-b")
	require.NoError(t, err)
	_, err = catalog.TakeOver(ctx, h.models, "sales", epoch, "node-b")
	require.NoError(t, err)
	require.NoError(t, catalog.Release(ctx, h.owners, "sales", rev))
	// node-a has the most free slots, but node-b has the model's file.
	h.heartbeat("node-a", 20, "duckdb")
	h.heartbeat("node-b", 5, "duckdb")
	h.run(dispatcher.Config{})

	h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	l := h.waitLease("sales", "node-b")
	require.Greater(t, l.GetEpoch(), epoch)
}
