package catalog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestPins(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := natstest.Start(t)
	require.NoError(t, natsboot.Setup(ctx, env.JS, natsboot.Config{PinTTL: time.Second}))
	kv, err := env.JS.KeyValue(ctx, subject.Default().PinsBucket())
	require.NoError(t, err)

	pinned := func(model string, v uint64) bool {
		p, err := catalog.Pinned(ctx, kv, model, v)
		require.NoError(t, err)
		return p
	}
	id, err := catalog.Pin(ctx, kv, "m", 3)
	require.NoError(t, err)
	require.True(t, pinned("m", 3))
	require.False(t, pinned("m", 4))
	require.False(t, pinned("m", 30), "version 30 is not version 3")
	require.False(t, pinned("mm", 3))

	// Renewed, a pin outlives the TTL; unpinned, it is gone at once.
	for range 3 {
		time.Sleep(400 * time.Millisecond)
		require.NoError(t, catalog.RenewPin(ctx, kv, "m", 3, id))
	}
	require.True(t, pinned("m", 3))
	require.NoError(t, catalog.Unpin(ctx, kv, "m", 3, id))
	require.False(t, pinned("m", 3))

	// Not renewed, it expires.
	id, err = catalog.Pin(ctx, kv, "m", 5)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return !pinned("m", 5) }, 10*time.Second, 100*time.Millisecond)
	err = catalog.RenewPin(ctx, kv, "m", 5, id)
	require.True(t, errors.Is(err, catalog.ErrLeaseLost), "%v", err)
}
