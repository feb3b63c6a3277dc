package natsboot_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// A tt_owners bucket made when leases expired with the bucket's TTL loses
// that TTL at the next Setup, keeping the leases it holds: they now hold
// while their node heartbeats, and must not expire behind its back.
func TestSetupDropsTheTTLOfAnOldOwnersBucket(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := natstest.Start(t)
	bucket := subject.Default().OwnersBucket()
	require.NoError(t, env.JS.DeleteKeyValue(ctx, bucket))
	old, err := env.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket, Storage: jetstream.FileStorage, TTL: 10 * time.Second})
	require.NoError(t, err)
	_, err = old.Put(ctx, "sales", []byte("a lease"))
	require.NoError(t, err)

	require.NoError(t, natsboot.Setup(ctx, env.JS, natsboot.Config{}))
	kv, err := env.JS.KeyValue(ctx, bucket)
	require.NoError(t, err)
	st, err := kv.Status(ctx)
	require.NoError(t, err)
	require.Zero(t, st.TTL(), "tt_owners has no TTL")
	e, err := kv.Get(ctx, "sales")
	require.NoError(t, err)
	require.Equal(t, "a lease", string(e.Value()))
}
