package catalog_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
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

func TestRenewFromTheCurrentRevisionOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	kv := ownersKV(t)
	epoch, rev, err := catalog.Grant(ctx, kv, "sales", "node-a")
	require.NoError(t, err)
	lease := &teatreev1.Lease{Node: "node-a", Epoch: epoch}

	next, err := catalog.Renew(ctx, kv, "sales", lease, rev)
	require.NoError(t, err)
	require.Greater(t, next, rev)
	got, _, err := catalog.GetLease(ctx, kv, "sales")
	require.NoError(t, err)
	require.Equal(t, epoch, got.GetEpoch(), "renewal keeps the epoch")

	_, err = catalog.Renew(ctx, kv, "sales", lease, rev)
	require.ErrorIs(t, err, catalog.ErrLeaseLost, "renewing from a stale revision")

	// Revoked: the key is deleted.
	require.NoError(t, kv.Delete(ctx, "sales"))
	_, err = catalog.Renew(ctx, kv, "sales", lease, next)
	require.ErrorIs(t, err, catalog.ErrLeaseLost, "renewing a revoked lease")
	_, err = catalog.Renew(ctx, kv, "never-granted", lease, next)
	require.ErrorIs(t, err, catalog.ErrLeaseLost, "renewing a lease that never existed")
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
	next, err := catalog.Renew(ctx, kv, "sales", &teatreev1.Lease{Node: "node-a", Epoch: epoch}, rev)
	require.NoError(t, err)

	require.Error(t, catalog.Release(ctx, kv, "sales", rev), "a stale revision cannot release")
	lease, _, err := catalog.GetLease(ctx, kv, "sales")
	require.NoError(t, err)
	require.NotNil(t, lease)

	require.NoError(t, catalog.Release(ctx, kv, "sales", next))
	lease, _, err = catalog.GetLease(ctx, kv, "sales")
	require.NoError(t, err)
	require.Nil(t, lease)
	require.ErrorIs(t, catalog.Fence(ctx, kv, "sales", "node-a", epoch), catalog.ErrLeaseLost)
}
