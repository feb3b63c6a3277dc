package dispatcher_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

// startFailed records, as a node that gives a model up does, that node
// could not start model while the requests up to through were waiting.
func (h *harness) startFailed(model, node string, through uint64) {
	h.t.Helper()
	err := catalog.RecordStartFailure(context.Background(), h.models, model, node, 0, time.Now(), 4, errors.New("bad model file"), through)
	require.NoError(h.t, err)
}

func TestStartFailurePlacesOnAnotherNode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.heartbeat("node-a", 5, "duckdb")
	h.heartbeat("node-b", 1, "duckdb")
	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "r1")
	h.startFailed("sales", "node-a", seq)
	h.run(dispatcher.Config{})

	// node-a has more free slots, but could not start the model.
	h.waitLease("sales", "node-b")
	h.handled(seq)
	h.noEvent("sales", subject.EventReject)
}

func TestStartFailureOnEveryNodeEndsUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.heartbeat("node-a", 5, "duckdb")
	seq := h.publish(h.names.Mut("sales", subject.OpSQL), subject.MsgID("sales", "r1"))
	h.startFailed("sales", "node-a", seq)
	// The placement grace is far beyond the test: the node waited its
	// start bound already.
	h.run(dispatcher.Config{PlacementGrace: time.Hour})

	ev, _ := h.event("sales", subject.EventReject)
	requireFailed(t, ev, "sales", subject.OpSQL, "r1", seq, apierr.Unavailable)
	msg := ev.GetStatuses()[0].GetError().GetMessage()
	require.Contains(t, msg, "cannot start")
	require.Contains(t, msg, "node-a")
	require.Contains(t, msg, "bad model file")
	h.handled(seq)

	// A request published after the failure was recorded gives the node
	// a new try: the cause may be fixed.
	later := h.publish(h.names.Mut("sales", subject.OpSQL), subject.MsgID("sales", "r2"))
	h.waitLease("sales", "node-a")
	h.handled(later)
	ev, _ = h.event("sales", subject.EventReject)
	require.Equal(t, seq, ev.GetStatuses()[0].GetSeq(), "r2 is not rejected")
}
