package notifier_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// createModel puts a bare spec of model in tt_models.
func (h *harness) createModel(model string) {
	h.t.Helper()
	b, err := wire.Marshal(&teatreev1.ModelSpec{Id: model})
	require.NoError(h.t, err)
	_, err = h.models.Create(context.Background(), model, b)
	require.NoError(h.t, err)
}

// A writer of epoch 1 that lost the model to epoch 2 (started after seq 10)
// is trusted for the outcomes up to seq 10 only; epoch 2's and epoch 0's
// are kept whatever their seq.
func TestStaleEpochOutcomesAboveTheSuccessorsStartAreDropped(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	h.createModel("sales")
	_, err := catalog.TakeOver(ctx, h.models, "sales", 1, "")
	require.NoError(t, err)
	_, err = catalog.CommitVersion(ctx, h.models, "sales", 1, 1, 10)
	require.NoError(t, err)
	_, err = catalog.TakeOver(ctx, h.models, "sales", 2, "")
	require.NoError(t, err)

	h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Epoch: 1, Statuses: []*teatreev1.RequestStatus{
		applied("sales", "r9", 9), applied("sales", "r10", 10), applied("sales", "r11", 11), applied("sales", "r12", 12)}}, "stale")
	h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Epoch: 2, Statuses: []*teatreev1.RequestStatus{
		applied("sales", "n11", 11)}}, "current")
	last := h.publishOutcomes(&teatreev1.Outcomes{Model: "sales", Statuses: []*teatreev1.RequestStatus{
		applied("sales", "z20", 20)}}, "epoch-0")
	h.processed(last)

	for _, id := range []string{"r9", "r10", "n11", "z20"} {
		h.notification(h.names.NtfRequest("sales", id))
	}
	require.EqualValues(t, 4, h.count(h.names.NtfModel("sales")), "r11 and r12 of the stale writer are dropped")
}

// An epoch's outcomes for a model deleted since are kept, as before.
func TestOutcomesOfADeletedModelAreKept(t *testing.T) {
	t.Parallel()
	h := start(t)
	seq := h.publishOutcomes(&teatreev1.Outcomes{Model: "gone", Epoch: 3, Statuses: []*teatreev1.RequestStatus{
		applied("gone", "r1", 1)}}, "gone")
	h.processed(seq)
	h.notification(h.names.NtfRequest("gone", "r1"))
}
