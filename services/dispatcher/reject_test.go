package dispatcher_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

// requireFailed asserts that ev is one failed status of request id at seq
// with an error code.
func requireFailed(t *testing.T, ev *teatreev1.Outcomes, model, op, id string, seq uint64, code apierr.Code) {
	t.Helper()
	require.Equal(t, model, ev.GetModel())
	require.False(t, ev.GetReplay())
	require.Len(t, ev.GetStatuses(), 1)
	s := ev.GetStatuses()[0]
	require.Equal(t, id, s.GetRequestId())
	require.Equal(t, model, s.GetModel())
	require.Equal(t, op, s.GetOp())
	require.Equal(t, subject.StatusFailed, s.GetStatus())
	require.Equal(t, seq, s.GetSeq())
	require.NotEmpty(t, s.GetAppliedAt())
	require.Equal(t, string(code), s.GetError().GetCode(), "message: %s", s.GetError().GetMessage())
	require.NotEmpty(t, s.GetError().GetMessage())
}

func TestMutationForAMissingModelIsNotFound(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.run(dispatcher.Config{})

	seq := h.publish(h.names.Mut("nobody", subject.OpSQL), "r1")
	ev, raw := h.outcome("nobody")
	requireFailed(t, ev, "nobody", subject.OpSQL, "r1", seq, apierr.NotFound)
	require.Equal(t, subject.RejectMsgID("nobody", seq, 0), raw.Header.Get(subject.HeaderMsgID))
	require.Nil(t, h.lease("nobody"))
}

func TestMutationWithoutARequestIDIsNamedBySequence(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.run(dispatcher.Config{})

	seq := h.publish(h.names.Mut("nobody", subject.OpAppend), "")
	ev, _ := h.outcome("nobody")
	requireFailed(t, ev, "nobody", subject.OpAppend, subject.SeqRequestID(seq), seq, apierr.NotFound)
}

func TestInvalidModelIDIsInvalidArgument(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.run(dispatcher.Config{})

	for i, model := range []string{"Sales", "-sales", "_sales", "a:b", "sales%"} {
		id := fmt.Sprintf("bad-%d", i)
		seq := h.publish(h.names.Mut(model, subject.OpSQL), id)
		ev, _ := h.outcome(model)
		requireFailed(t, ev, model, subject.OpSQL, id, seq, apierr.InvalidArgument)
	}
	// A subject without an op, for a model that exists.
	seq := h.publish(h.names.Prefix()+".mut.sales", "r-noop")
	ev, _ := h.outcome("sales")
	requireFailed(t, ev, "sales", "", "r-noop", seq, apierr.InvalidArgument)
}

func TestMutationFromBeforeTheModelIsNotFound(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	// Published first, then the model is created: the request belongs to
	// no model even though one exists by the time it is dispatched.
	seq := h.publish(h.names.Mut("sales", subject.OpSQL), "early")
	spec := h.createModel("sales")
	require.Equal(t, seq, spec.GetCreatedSeq())
	h.heartbeat("node-a", 4, "duckdb")
	h.run(dispatcher.Config{})

	ev, _ := h.outcome("sales")
	requireFailed(t, ev, "sales", subject.OpSQL, "early", seq, apierr.NotFound)
	require.Contains(t, ev.GetStatuses()[0].GetError().GetMessage(), "did not exist when")
	require.Nil(t, h.lease("sales"), "an early request does not place the model")
}
