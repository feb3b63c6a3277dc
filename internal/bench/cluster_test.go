package bench

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// The cluster scenarios' NATS servers form one cluster: teatree's streams
// get three replicas there, one on each server.
func TestClusterEnvHoldsStreamsOnThreeServers(t *testing.T) {
	r := &runner{opt: Options{Work: t.TempDir(), Out: t.TempDir()}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := r.startCluster(ctx, "test", clusterOptions{leaseTTL: time.Second})
	require.NoError(t, err)
	t.Cleanup(c.stop)
	seeds, err := natsboot.SeedURLs(c.natsURL)
	require.NoError(t, err)
	require.Len(t, seeds, clusterServers)
	nc, err := nats.Connect(c.natsURL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	require.NoError(t, natsboot.SetupRetry(ctx, js, natsboot.Config{Replicas: c.replicas}, slog.New(slog.DiscardHandler)))
	s, err := js.Stream(ctx, subject.Default().MutStream())
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, clusterServers, info.Config.Replicas)
	require.NotNil(t, info.Cluster)
	require.Len(t, info.Cluster.Replicas, clusterServers-1, "the stream's leader and two followers")
}
