package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// requireCode asserts that err carries the contract code.
func requireCode(t *testing.T, err error, code apierr.Code) {
	t.Helper()
	var ae *apierr.Error
	require.True(t, errors.As(err, &ae), "want %s, got %v", code, err)
	require.Equal(t, code, ae.Code, "%v", err)
}

// modelsEnv is a JetStream server with its tt_models bucket and TT_MUT.
func modelsEnv(t *testing.T) (jetstream.JetStream, jetstream.KeyValue, jetstream.Stream) {
	t.Helper()
	ctx := context.Background()
	env := natstest.Start(t)
	names := subject.Default()
	kv, err := env.JS.KeyValue(ctx, names.ModelsBucket())
	require.NoError(t, err)
	mut, err := env.JS.Stream(ctx, names.MutStream())
	require.NoError(t, err)
	return env.JS, kv, mut
}

// publishMuts publishes n mutations and returns the last one's sequence.
func publishMuts(t *testing.T, js jetstream.JetStream, model string, n int) uint64 {
	t.Helper()
	var last uint64
	for range n {
		ack, err := js.Publish(context.Background(), subject.Default().Mut(model, subject.OpSQL), []byte(`{"sql":"select 1"}`))
		require.NoError(t, err)
		last = ack.Sequence
	}
	return last
}

func TestCreateModelRecordsTheLastSequence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, kv, mut := modelsEnv(t)
	publishMuts(t, js, "other", 2)
	last := publishMuts(t, js, "sales", 3)
	require.EqualValues(t, 5, last)

	before := time.Now().UTC().Add(-time.Second)
	spec, err := catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "sales", Version: 9, AppliedSeq: 9, LeaseEpoch: 9})
	require.NoError(t, err)
	require.Equal(t, last, spec.GetCreatedSeq())
	require.Equal(t, catalog.DefaultCapabilities, spec.GetCapabilities())
	require.Zero(t, spec.GetVersion(), "server-set fields are reset")
	require.Zero(t, spec.GetAppliedSeq())
	require.Zero(t, spec.GetLeaseEpoch())
	created, err := time.Parse(time.RFC3339, spec.GetCreatedAt())
	require.NoError(t, err)
	require.False(t, created.Before(before.Truncate(time.Second)))

	stored, _, err := catalog.GetModel(ctx, kv, "sales")
	require.NoError(t, err)
	require.Equal(t, last, stored.GetCreatedSeq())
	require.Equal(t, []string{"duckdb"}, stored.GetCapabilities())
	require.Equal(t, spec.GetCreatedAt(), stored.GetCreatedAt())

	// A later model sees the later sequence.
	last = publishMuts(t, js, "sales", 1)
	spec, err = catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "gpu-model", Capabilities: []string{"duckdb", "gpu"}})
	require.NoError(t, err)
	require.Equal(t, last, spec.GetCreatedSeq())
	require.Equal(t, []string{"duckdb", "gpu"}, spec.GetCapabilities())
}

func TestCreateModelRejectsADuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, kv, mut := modelsEnv(t)
	first, err := catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "sales"})
	require.NoError(t, err)

	_, err = catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "sales", Capabilities: []string{"gpu"}})
	requireCode(t, err, apierr.InvalidArgument)
	stored, _, err := catalog.GetModel(ctx, kv, "sales")
	require.NoError(t, err)
	require.Equal(t, first.GetCapabilities(), stored.GetCapabilities(), "the first spec stays")
	require.Equal(t, first.GetCreatedAt(), stored.GetCreatedAt())
}

func TestCreateModelFinishesAPendingCreation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js, kv, mut := modelsEnv(t)
	// A creation cut short between its two writes.
	pending := &teatreev1.ModelSpec{Id: "sales", Capabilities: []string{"duckdb", "python"},
		CreatedAt: "2026-01-02T03:04:05Z", CreatedSeq: catalog.PendingSeq}
	b, err := wire.Marshal(pending)
	require.NoError(t, err)
	_, err = kv.Create(ctx, "sales", b)
	require.NoError(t, err)
	last := publishMuts(t, js, "sales", 4)

	spec, err := catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "sales"})
	require.NoError(t, err)
	require.Equal(t, last, spec.GetCreatedSeq())
	require.Equal(t, []string{"duckdb", "python"}, spec.GetCapabilities(), "the pending spec is finished, not replaced")
	require.Equal(t, "2026-01-02T03:04:05Z", spec.GetCreatedAt())

	stored, _, err := catalog.GetModel(ctx, kv, "sales")
	require.NoError(t, err)
	require.Equal(t, last, stored.GetCreatedSeq())

	// Once finished, it is a duplicate like any other.
	_, err = catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "sales"})
	requireCode(t, err, apierr.InvalidArgument)
}

func TestCreateModelValidatesFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, kv, mut := modelsEnv(t)
	_, err := catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "Bad.Id"})
	requireCode(t, err, apierr.InvalidArgument)
	_, err = kv.Get(ctx, "Bad.Id")
	require.Error(t, err, "nothing stored")
}

func TestGetModelNotFound(t *testing.T) {
	t.Parallel()
	_, kv, _ := modelsEnv(t)
	_, _, err := catalog.GetModel(context.Background(), kv, "none")
	requireCode(t, err, apierr.NotFound)
}

func TestValidateSpec(t *testing.T) {
	t.Parallel()
	bad := map[string]*teatreev1.ModelSpec{
		"empty id":            {},
		"bad id":              {Id: "Sales"},
		"dotted id":           {Id: "a.b"},
		"bad capability":      {Id: "m", Capabilities: []string{"duckdb", "GPU"}},
		"empty capability":    {Id: "m", Capabilities: []string{""}},
		"wildcard capability": {Id: "m", Capabilities: []string{"*"}},
		"negative interval":   {Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: -1}},
		"negative every":      {Id: "m", Snapshot: &teatreev1.SnapshotPolicy{EveryMutations: -1}},
		"negative keep":       {Id: "m", Snapshot: &teatreev1.SnapshotPolicy{Keep: -1}},
	}
	for name, spec := range bad {
		t.Run(name, func(t *testing.T) {
			requireCode(t, catalog.ValidateSpec(spec), apierr.InvalidArgument)
		})
	}

	spec := &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 0, EveryMutations: 5, Keep: 1}}
	require.NoError(t, catalog.ValidateSpec(spec))
	require.Equal(t, []string{"duckdb"}, spec.GetCapabilities())
	spec = &teatreev1.ModelSpec{Id: "m", Capabilities: []string{"python", "size:large"}}
	require.NoError(t, catalog.ValidateSpec(spec))
	require.Equal(t, []string{"python", "size:large"}, spec.GetCapabilities(), "named capabilities are kept")
}
