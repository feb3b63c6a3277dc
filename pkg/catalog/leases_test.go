package catalog_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// ownersKV is a JetStream server's tt_owners bucket.
func ownersKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	ctx := context.Background()
	env := natstest.Start(t)
	kv, err := env.JS.KeyValue(ctx, subject.Default().OwnersBucket())
	require.NoError(t, err)
	return kv
}

func TestGrantEpochIsTheGrantRevision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := ownersKV(t)

	epoch, rev, err := catalog.Grant(ctx, kv, "sales", "node-a")
	require.NoError(t, err)
	require.NotZero(t, epoch)
	// Nothing else writes to this bucket: the grant is a create (the
	// epoch) and the write that records the epoch in the lease, right
	// after it. (A watch could show this only when it starts before the
	// create, which it cannot be sure to.)
	require.Equal(t, epoch+1, rev, "the epoch is the revision of the grant's first write")
	lease, lrev, err := catalog.GetLease(ctx, kv, "sales")
	require.NoError(t, err)
	require.Equal(t, "node-a", lease.GetNode())
	require.Equal(t, epoch, lease.GetEpoch())
	require.Equal(t, rev, lrev)

	_, _, err = catalog.Grant(ctx, kv, "sales", "node-b")
	require.ErrorIs(t, err, catalog.ErrLeaseHeld)
	lease, _, err = catalog.GetLease(ctx, kv, "sales")
	require.NoError(t, err)
	require.Equal(t, "node-a", lease.GetNode(), "a refused grant changes nothing")

	// The next holder's epoch is larger, whichever model came between.
	_, _, err = catalog.Grant(ctx, kv, "other", "node-a")
	require.NoError(t, err)
	require.NoError(t, catalog.Release(ctx, kv, "sales", rev))
	epoch2, _, err := catalog.Grant(ctx, kv, "sales", "node-b")
	require.NoError(t, err)
	require.Greater(t, epoch2, epoch)
}

func TestFence(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := ownersKV(t)
	epoch, _, err := catalog.Grant(ctx, kv, "sales", "node-a")
	require.NoError(t, err)

	require.NoError(t, catalog.Fence(ctx, kv, "sales", "node-a", epoch))
	require.ErrorIs(t, catalog.Fence(ctx, kv, "sales", "node-b", epoch), catalog.ErrLeaseLost)
	require.ErrorIs(t, catalog.Fence(ctx, kv, "sales", "node-a", epoch-1), catalog.ErrLeaseLost)
	require.ErrorIs(t, catalog.Fence(ctx, kv, "sales", "node-a", epoch+1), catalog.ErrLeaseLost)
	require.ErrorIs(t, catalog.Fence(ctx, kv, "none", "node-a", epoch), catalog.ErrLeaseLost)
}

func TestReleaseOnlyTheHoldersRevision(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := ownersKV(t)
	epoch, rev, err := catalog.Grant(ctx, kv, "sales", "node-a")
	require.NoError(t, err)

	// The epoch is the revision of the grant's create, older than rev.
	require.Error(t, catalog.Release(ctx, kv, "sales", epoch), "a stale revision cannot release")
	lease, _, err := catalog.GetLease(ctx, kv, "sales")
	require.NoError(t, err)
	require.NotNil(t, lease)

	require.NoError(t, catalog.Release(ctx, kv, "sales", rev))
	lease, _, err = catalog.GetLease(ctx, kv, "sales")
	require.NoError(t, err)
	require.Nil(t, lease)
	require.ErrorIs(t, catalog.Fence(ctx, kv, "sales", "node-a", epoch), catalog.ErrLeaseLost)
}
