package notifier_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// mutation publishes a request of model to TT_MUT and returns its seq.
func (h *harness) mutation(model, id string) uint64 {
	h.t.Helper()
	ack, err := h.js.Publish(context.Background(), h.names.Mut(model, subject.OpSQL), []byte(`{"sql":"select 1"}`),
		jetstream.WithMsgID(subject.MsgID(model, id)))
	require.NoError(h.t, err)
	return ack.Sequence
}

// publishReject publishes the dispatcher's rejection of the request at seq
// under epoch.
func (h *harness) publishReject(model, id string, seq, epoch uint64) uint64 {
	h.t.Helper()
	b, err := proto.Marshal(&teatreev1.Outcomes{Model: model, Epoch: epoch, Statuses: []*teatreev1.RequestStatus{{
		RequestId: id, Model: model, Op: subject.OpSQL, Status: subject.StatusFailed, Seq: seq,
		Error: &teatreev1.Error{Code: "unavailable", Message: "no live node"},
	}}})
	require.NoError(h.t, err)
	return h.publishEvent(h.names.Evt(model, subject.EventReject), b, subject.RejectMsgID(model, seq, epoch)+"."+time.Now().String())
}

func (h *harness) spec(model string) *teatreev1.ModelSpec {
	h.t.Helper()
	spec, _, err := catalog.GetModel(context.Background(), h.models, model)
	require.NoError(h.t, err)
	return spec
}

func (h *harness) inMut(seq uint64) bool {
	h.t.Helper()
	_, err := h.mut.GetMsg(context.Background(), seq)
	if err == nil {
		return true
	}
	require.ErrorIs(h.t, err, jetstream.ErrMsgNotFound)
	return false
}

func TestRejectionUnderTheCurrentEpochIsFinished(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.createModel("sales")
	_, err := catalog.TakeOver(context.Background(), h.models, "sales", 5, "")
	require.NoError(t, err)
	seq := h.mutation("sales", "r1")

	h.processed(h.publishReject("sales", "r1", seq, 5))
	raw := h.notification(h.names.NtfRequest("sales", "r1"))
	require.Equal(t, subject.StatusFailed, raw.Header.Get(subject.HeaderStatus))
	require.False(t, h.inMut(seq), "the rejected request is deleted from TT_MUT")
	require.Empty(t, h.spec("sales").GetRejectedSeqs(), "the rejection is forgotten once the request is gone")
}

// A rejection delivered again after a crash between its steps (recorded,
// notified, not yet deleted) is finished, without a second notification.
func TestRejectionInterruptedIsFinishedOnRedelivery(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	h.createModel("sales")
	_, err := catalog.TakeOver(ctx, h.models, "sales", 5, "")
	require.NoError(t, err)
	seq := h.mutation("sales", "r1")
	require.NoError(t, catalog.Reject(ctx, h.models, "sales", 5, seq))
	old := h.publishEvent(h.names.NtfRequest("sales", "r1"), []byte(`{"request_id":"r1","status":"failed"}`), "before-the-crash")

	h.processed(h.publishReject("sales", "r1", seq, 5))
	require.False(t, h.inMut(seq))
	require.Empty(t, h.spec("sales").GetRejectedSeqs())
	require.Equal(t, old, h.notification(h.names.NtfRequest("sales", "r1")).Sequence)
	require.EqualValues(t, 1, h.count(h.names.NtfModel("sales")))
}

// A holder that took the model over under a newer epoch applies the
// request: the rejection is dropped and the request stays in TT_MUT.
func TestRejectionUnderAnOlderEpochIsDropped(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	h.createModel("sales")
	_, err := catalog.TakeOver(ctx, h.models, "sales", 5, "")
	require.NoError(t, err)
	seq := h.mutation("sales", "r1")
	_, err = catalog.TakeOver(ctx, h.models, "sales", 6, "")
	require.NoError(t, err)

	h.processed(h.publishReject("sales", "r1", seq, 5))
	require.EqualValues(t, 0, h.count(h.names.NtfModel("sales")))
	require.True(t, h.inMut(seq))
	require.Empty(t, h.spec("sales").GetRejectedSeqs())
}

// A request notified already (applied by a holder before the rejection
// reached the notifier) is left as it is.
func TestRejectionOfANotifiedRequestIsDropped(t *testing.T) {
	t.Parallel()
	h := start(t)
	h.createModel("sales")
	_, err := catalog.TakeOver(context.Background(), h.models, "sales", 5, "")
	require.NoError(t, err)
	seq := h.mutation("sales", "r1")
	old := h.publishEvent(h.names.NtfRequest("sales", "r1"), []byte(`{"request_id":"r1","status":"applied"}`), "applied")

	h.processed(h.publishReject("sales", "r1", seq, 5))
	require.Equal(t, old, h.notification(h.names.NtfRequest("sales", "r1")).Sequence)
	require.True(t, h.inMut(seq))
	require.Empty(t, h.spec("sales").GetRejectedSeqs())
}

// A rejection delivered again after its request was deleted from TT_MUT,
// but before the rejection was forgotten, is finished.
func TestRejectionOfADeletedRequestIsFinished(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	h.createModel("sales")
	_, err := catalog.TakeOver(ctx, h.models, "sales", 5, "")
	require.NoError(t, err)
	seq := h.mutation("sales", "r1")
	h.mutation("sales", "r2") // keeps seq from being the stream's last
	require.NoError(t, catalog.Reject(ctx, h.models, "sales", 5, seq))
	require.NoError(t, h.mut.DeleteMsg(ctx, seq))

	h.processed(h.publishReject("sales", "r1", seq, 5))
	require.Equal(t, subject.StatusFailed, h.notification(h.names.NtfRequest("sales", "r1")).Header.Get(subject.HeaderStatus))
	require.Empty(t, h.spec("sales").GetRejectedSeqs())
}
