package catalog_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// epochModel creates model "m" and returns its bucket.
func epochModel(t *testing.T) jetstream.KeyValue {
	t.Helper()
	_, kv, mut := modelsEnv(t)
	_, err := catalog.CreateModel(context.Background(), kv, mut, &teatreev1.ModelSpec{Id: "m"})
	require.NoError(t, err)
	return kv
}

func getSpec(t *testing.T, kv jetstream.KeyValue) *teatreev1.ModelSpec {
	t.Helper()
	spec, _, err := catalog.GetModel(context.Background(), kv, "m")
	require.NoError(t, err)
	return spec
}

// publishVersion reserves and commits the next version at epoch.
func publishVersion(t *testing.T, kv jetstream.KeyValue, epoch, appliedSeq uint64) uint64 {
	t.Helper()
	ctx := context.Background()
	v, err := catalog.ReserveVersion(ctx, kv, "m", epoch)
	require.NoError(t, err)
	_, err = catalog.CommitVersion(ctx, kv, "m", epoch, v, appliedSeq)
	require.NoError(t, err)
	return v
}

func epochStarts(spec *teatreev1.ModelSpec) map[uint64]uint64 {
	out := map[uint64]uint64{}
	for _, e := range spec.GetEpochs() {
		out[e.GetEpoch()] = e.GetStartSeq()
	}
	return out
}

func TestTakeOver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := epochModel(t)

	spec, err := catalog.TakeOver(ctx, kv, "m", 5, "node-a")
	require.NoError(t, err)
	require.Equal(t, uint64(5), spec.GetLeaseEpoch())
	require.Equal(t, "node-a", spec.GetEpochs()[0].GetNode(), "the epoch names its holder")
	require.Equal(t, map[uint64]uint64{5: 0}, epochStarts(spec))
	require.Equal(t, spec, getSpec(t, kv), "TakeOver returns the spec it stored")

	v1 := publishVersion(t, kv, 5, 10)
	require.Equal(t, uint64(1), v1)

	// A restart under the same epoch keeps where the epoch started.
	spec, err = catalog.TakeOver(ctx, kv, "m", 5, "")
	require.NoError(t, err)
	require.Equal(t, map[uint64]uint64{5: 0}, epochStarts(spec))

	// A newer holder starts at the published applied_seq.
	spec, err = catalog.TakeOver(ctx, kv, "m", 9, "node-b")
	require.NoError(t, err)
	require.Equal(t, "node-b", spec.GetEpochs()[1].GetNode())
	require.Equal(t, uint64(9), spec.GetLeaseEpoch())
	require.Equal(t, map[uint64]uint64{5: 0, 9: 10}, epochStarts(spec))

	// An older epoch cannot take the model back, and changes nothing.
	_, err = catalog.TakeOver(ctx, kv, "m", 5, "")
	require.ErrorIs(t, err, catalog.ErrStale)
	require.Equal(t, spec, getSpec(t, kv))
}

// A version reserved by a holder that lost the model is abandoned: never
// visible, and never handed out again, because its folder may still be
// written by the stale holder.
func TestTakeOverAbandonsAReservedVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := epochModel(t)
	_, err := catalog.TakeOver(ctx, kv, "m", 1, "")
	require.NoError(t, err)
	publishVersion(t, kv, 1, 3)
	reserved, err := catalog.ReserveVersion(ctx, kv, "m", 1)
	require.NoError(t, err)
	require.Equal(t, uint64(2), reserved)

	spec, err := catalog.TakeOver(ctx, kv, "m", 2, "")
	require.NoError(t, err)
	require.Equal(t, []uint64{reserved}, spec.GetAbandonedVersions())
	require.Equal(t, uint64(1), spec.GetVersion())

	next, err := catalog.ReserveVersion(ctx, kv, "m", 2)
	require.NoError(t, err)
	require.NotEqual(t, reserved, next, "an abandoned number is handed out again")
	require.Greater(t, next, reserved)
	spec, err = catalog.CommitVersion(ctx, kv, "m", 2, next, 7)
	require.NoError(t, err)
	require.True(t, catalog.VersionVisible(spec, next))
	require.False(t, catalog.VersionVisible(spec, reserved))
	require.True(t, catalog.VersionVisible(spec, 1))

	// The stale holder can neither publish its version nor reserve another.
	_, err = catalog.CommitVersion(ctx, kv, "m", 1, reserved, 9)
	require.ErrorIs(t, err, catalog.ErrStale)
	_, err = catalog.ReserveVersion(ctx, kv, "m", 1)
	require.ErrorIs(t, err, catalog.ErrStale)
	require.Equal(t, spec, getSpec(t, kv))
}

func TestCommitVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := epochModel(t)
	_, err := catalog.TakeOver(ctx, kv, "m", 1, "")
	require.NoError(t, err)
	for _, seq := range []uint64{4, 8, 12} {
		require.NoError(t, catalog.Reject(ctx, kv, "m", 1, seq))
	}
	require.NoError(t, catalog.Reject(ctx, kv, "m", 1, 8), "rejecting twice")
	require.Equal(t, []uint64{4, 8, 12}, getSpec(t, kv).GetRejectedSeqs())

	v, err := catalog.ReserveVersion(ctx, kv, "m", 1)
	require.NoError(t, err)
	spec, err := catalog.CommitVersion(ctx, kv, "m", 1, v, 8)
	require.NoError(t, err)
	require.Equal(t, v, spec.GetVersion())
	require.Equal(t, uint64(8), spec.GetAppliedSeq())
	require.Equal(t, []uint64{12}, spec.GetRejectedSeqs(), "the version covers 4 and 8")

	for _, tc := range []struct {
		name             string
		version, applied uint64
		epoch            uint64
		wantStale        bool
	}{
		{name: "the same version again", version: v, applied: 9, epoch: 1},
		{name: "an older applied_seq", version: v + 1, applied: 7, epoch: 1},
		{name: "another epoch", version: v + 1, applied: 9, epoch: 2, wantStale: true},
	} {
		_, err := catalog.CommitVersion(ctx, kv, "m", tc.epoch, tc.version, tc.applied)
		require.Error(t, err, tc.name)
		if tc.wantStale {
			require.ErrorIs(t, err, catalog.ErrStale, tc.name)
		} else {
			require.NotErrorIs(t, err, catalog.ErrStale, tc.name)
		}
	}
	require.Equal(t, spec, getSpec(t, kv), "refused commits change nothing")
}

func TestRejectAndUnreject(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := epochModel(t)
	_, err := catalog.TakeOver(ctx, kv, "m", 3, "")
	require.NoError(t, err)
	require.NoError(t, catalog.Reject(ctx, kv, "m", 3, 5))
	require.NoError(t, catalog.Reject(ctx, kv, "m", 3, 6))
	require.ErrorIs(t, catalog.Reject(ctx, kv, "m", 2, 7), catalog.ErrStale, "an older epoch rejects")
	require.ErrorIs(t, catalog.Reject(ctx, kv, "m", 4, 7), catalog.ErrStale, "an epoch that never took over rejects")
	require.Equal(t, []uint64{5, 6}, getSpec(t, kv).GetRejectedSeqs())

	// Unreject needs no epoch: the message is gone whoever holds the model.
	require.NoError(t, catalog.Unreject(ctx, kv, "m", 5))
	require.NoError(t, catalog.Unreject(ctx, kv, "m", 99))
	require.Equal(t, []uint64{6}, getSpec(t, kv).GetRejectedSeqs())

	// A takeover keeps them: the next holder must skip them.
	spec, err := catalog.TakeOver(ctx, kv, "m", 8, "")
	require.NoError(t, err)
	require.Equal(t, []uint64{6}, spec.GetRejectedSeqs())
}

func TestTrustedThrough(t *testing.T) {
	t.Parallel()
	spec := &teatreev1.ModelSpec{
		LeaseEpoch: 30, AppliedSeq: 500,
		Epochs: []*teatreev1.EpochStart{{Epoch: 10, StartSeq: 0}, {Epoch: 20, StartSeq: 100}, {Epoch: 30, StartSeq: 250}},
	}
	for _, tc := range []struct {
		epoch   uint64
		seq     uint64
		limited bool
	}{
		{epoch: 30},
		{epoch: 31},
		{epoch: 20, seq: 250, limited: true},
		{epoch: 10, seq: 100, limited: true},
		{epoch: 15, seq: 100, limited: true},
		{epoch: 5, seq: 0, limited: true},
		{epoch: 25, seq: 250, limited: true},
	} {
		seq, limited := catalog.TrustedThrough(spec, tc.epoch)
		require.Equal(t, tc.limited, limited, "epoch %d", tc.epoch)
		require.Equal(t, tc.seq, seq, "epoch %d", tc.epoch)
	}
	// An epoch older than the kept history, which starts at 20.
	spec.Epochs = spec.Epochs[1:]
	seq, limited := catalog.TrustedThrough(spec, 10)
	require.True(t, limited)
	require.Equal(t, uint64(100), seq)
	// Every epoch is the current one before any takeover.
	_, limited = catalog.TrustedThrough(&teatreev1.ModelSpec{}, 0)
	require.False(t, limited)
}

func TestVersionVisible(t *testing.T) {
	t.Parallel()
	spec := &teatreev1.ModelSpec{Version: 5, AbandonedVersions: []uint64{3}}
	for v, want := range map[uint64]bool{0: false, 1: true, 2: true, 3: false, 4: true, 5: true, 6: false} {
		require.Equal(t, want, catalog.VersionVisible(spec, v), "version %d", v)
	}
	require.False(t, catalog.VersionVisible(&teatreev1.ModelSpec{}, 1))
}
