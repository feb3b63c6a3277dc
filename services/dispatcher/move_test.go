package dispatcher_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

// move asks the dispatcher to move model to node, as the gateway does,
// and returns its answer or the error code it failed with.
func (h *harness) move(model, to string) (catalog.Move, apierr.Code) {
	h.t.Helper()
	b, err := json.Marshal(catalog.MoveRequest{Model: model, To: to})
	require.NoError(h.t, err)
	msg, err := h.js.Conn().Request(h.names.DispatchMove(), b, time.Minute)
	require.NoError(h.t, err)
	if msg.Header.Get(subject.HeaderStatus) == subject.StatusFailed {
		e := &teatreev1.ErrorReply{}
		require.NoError(h.t, wire.Unmarshal(msg.Data, e))
		require.Equal(h.t, msg.Header.Get(subject.HeaderErrorCode), e.GetError().GetCode())
		require.NotEmpty(h.t, e.GetError().GetMessage())
		return catalog.Move{}, apierr.Code(e.GetError().GetCode())
	}
	var mv catalog.Move
	require.NoError(h.t, json.Unmarshal(msg.Data, &mv))
	return mv, ""
}

// serveReleases answers node's release requests as a node does: it gives
// the model's lease up, then calls after (if set) before it answers.
func (h *harness) serveReleases(node string, after func(model string)) {
	h.t.Helper()
	sub, err := h.js.Conn().Subscribe(h.names.NodeRelease(node), func(msg *nats.Msg) {
		model := string(msg.Data)
		e, err := h.owners.Get(context.Background(), model)
		if err == nil {
			err = catalog.Release(context.Background(), h.owners, model, e.Revision())
		}
		if err != nil {
			_ = msg.Respond([]byte(err.Error()))
			return
		}
		if after != nil {
			after(model)
		}
		_ = msg.Respond(nil)
	})
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = sub.Unsubscribe() })
}

// delivered waits, for at most 10s and asserting nothing (it runs in a
// subscription), until the dispatcher's consumer has been handed the
// message at seq.
func (h *harness) delivered(seq uint64) {
	for range 500 {
		c, err := h.js.Consumer(context.Background(), h.names.MutStream(), "dispatcher")
		if err == nil {
			if info, err := c.Info(context.Background()); err == nil && info.Delivered.Stream >= seq {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMoveWithoutOwnerGrantsTheTarget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.keepAlive("node-a", 5, "duckdb")
	h.keepAlive("node-b", 1, "duckdb")
	h.run(dispatcher.Config{})

	mv, code := h.move("sales", "node-b")
	require.Empty(t, code)
	l := h.waitLease("sales", "node-b")
	require.Equal(t, catalog.Move{Model: "sales", From: "", To: "node-b", Epoch: l.GetEpoch()}, mv)

	// Moving it where it is does nothing.
	again, code := h.move("sales", "node-b")
	require.Empty(t, code)
	require.Equal(t, catalog.Move{Model: "sales", From: "node-b", To: "node-b", Epoch: l.GetEpoch()}, again)
}

func TestMoveHandsTheLeaseOverAndPlacesNowhereElse(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.keepAlive("node-a", 5, "duckdb")
	h.run(dispatcher.Config{})
	h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	from := h.waitLease("sales", "node-a")

	// node-c would win any placement (most free slots). Once the owner
	// has released the lease and before the move grants it, a request
	// comes, and the release itself has the dispatcher look at the model
	// at once: still only the move's target gets the lease (a placement
	// on node-c would fail the move's grant).
	h.keepAlive("node-b", 1, "duckdb")
	h.keepAlive("node-c", 50, "duckdb")
	during := make(chan uint64, 1)
	h.serveReleases("node-a", func(model string) {
		seq := h.publish(h.names.Mut(model, subject.OpSQL), "r2")
		h.delivered(seq)
		during <- seq
	})
	mv, code := h.move("sales", "node-b")
	require.Empty(t, code)
	l := h.waitLease("sales", "node-b")
	require.Equal(t, catalog.Move{Model: "sales", From: "node-a", To: "node-b", Epoch: l.GetEpoch()}, mv)
	require.Greater(t, mv.Epoch, from.GetEpoch())
	// The request that came during the move is the target's.
	h.handled(<-during)
	require.Equal(t, "node-b", h.lease("sales").GetNode())
}

func TestMoveTakesTheLeaseFromAnOwnerThatDoesNotAnswer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.keepAlive("node-a", 5, "duckdb") // heartbeats, but serves no release
	h.run(dispatcher.Config{})
	h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	from := h.waitLease("sales", "node-a")
	h.keepAlive("node-b", 1, "duckdb")

	mv, code := h.move("sales", "node-b")
	require.Empty(t, code)
	require.Equal(t, "node-a", mv.From)
	require.Greater(t, mv.Epoch, from.GetEpoch())
	h.waitLease("sales", "node-b")
}

func TestMoveFailsForATargetThatCannotTakeTheModel(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales", "duckdb", "size:medium")
	h.keepAlive("node-a", 5, "duckdb", "size:large")
	h.keepAlive("node-full", 0, "duckdb", "size:large")
	h.keepAlive("node-small", 5, "duckdb", "size:small")
	h.keepAlive("node-gpu", 5, "gpu", "size:large")
	h.run(dispatcher.Config{})
	mv, code := h.move("sales", "node-a")
	require.Empty(t, code)

	for _, tc := range []struct {
		model, to string
		code      apierr.Code
	}{
		{"sales", "node-full", apierr.ResourceExhausted},
		{"sales", "node-small", apierr.InvalidArgument},
		{"sales", "node-gpu", apierr.InvalidArgument},
		{"sales", "node-nowhere", apierr.NotFound},
		{"nosuchmodel", "node-a", apierr.NotFound},
		{"Bad.Id", "node-a", apierr.InvalidArgument},
	} {
		_, code := h.move(tc.model, tc.to)
		require.Equal(t, tc.code, code, "move %s to %s", tc.model, tc.to)
	}
	// A failed move leaves the lease where it was.
	require.Equal(t, mv.Epoch, h.waitLease("sales", "node-a").GetEpoch())
}
