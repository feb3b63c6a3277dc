package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func TestStartFailureAddsUpUntilCleared(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, kv, mut := modelsEnv(t)
	_, err := catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "sales"})
	require.NoError(t, err)
	_, err = catalog.TakeOver(ctx, kv, "sales", 5, "")
	require.NoError(t, err)

	first := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	require.NoError(t, catalog.RecordStartFailure(ctx, kv, "sales", "node-a", 5, first, 3, errors.New("bad file"), 7))
	require.NoError(t, catalog.RecordStartFailure(ctx, kv, "sales", "node-b", 6, first.Add(time.Minute), 2, errors.New("disk full"), 9))
	spec, _, err := catalog.GetModel(ctx, kv, "sales")
	require.NoError(t, err)
	f := spec.GetStartFailure()
	require.Equal(t, "node-b", f.GetNode())
	require.Equal(t, "disk full", f.GetMessage())
	require.Equal(t, first.Format(time.RFC3339Nano), f.GetSince(), "since the first failure")
	require.EqualValues(t, 5, f.GetAttempts())
	require.Equal(t, []string{"node-a", "node-b"}, f.GetNodes())
	require.EqualValues(t, 9, f.GetThroughSeq())

	// A holder older than the model's epoch does not mark it failing.
	require.NoError(t, catalog.ClearStartFailure(ctx, kv, "sales"))
	err = catalog.RecordStartFailure(ctx, kv, "sales", "node-a", 4, first, 1, errors.New("late"), 9)
	require.ErrorIs(t, err, catalog.ErrStale)
	spec, _, err = catalog.GetModel(ctx, kv, "sales")
	require.NoError(t, err)
	require.Nil(t, spec.GetStartFailure())

	// A client cannot create a model that looks failing.
	spec, err = catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: "crm", StartFailure: &teatreev1.StartFailure{Node: "x"}})
	require.NoError(t, err)
	require.Nil(t, spec.GetStartFailure())
}
