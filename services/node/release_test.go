package node_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
)

func TestReleasePublishesWhatWasAppliedAndGivesTheLeaseUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	// No version comes by the snapshot policy during the test: the one
	// that exists after the release is the release's.
	_, err := catalog.CreateModel(ctx, h.models, h.mut, &teatreev1.ModelSpec{Id: "sales",
		Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: time.Hour.Milliseconds(), EveryMutations: 1_000_000}})
	require.NoError(t, err)
	h.run("node-a")
	h.grant("sales", "node-a")
	h.publishSQL("sales", "r1", "create table t (x int)")
	last := h.publishSQL("sales", "r2", "insert into t values (1)")
	require.Equal(t, subject.StatusApplied, h.outcome("sales", "r2").GetStatus())

	reply, err := h.js.Conn().Request(h.names.NodeRelease("node-a"), []byte("sales"), time.Minute)
	require.NoError(t, err)
	require.Empty(t, string(reply.Data), "release failed")
	l, _, err := catalog.GetLease(ctx, h.owners, "sales")
	require.NoError(t, err)
	require.Nil(t, l, "the lease is released")
	spec, _, err := catalog.GetModel(ctx, h.models, "sales")
	require.NoError(t, err)
	require.GreaterOrEqual(t, spec.GetAppliedSeq(), last, "a version holds everything applied")
	require.NotZero(t, spec.GetVersion())

	// Another node, with a data directory of its own, takes it from the
	// version and goes on.
	h.start("node-b", t.TempDir(), h.workers)
	h.grant("sales", "node-b")
	h.publishSQL("sales", "r3", "insert into t values (2)")
	require.Equal(t, subject.StatusApplied, h.outcome("sales", "r3").GetStatus())

	// A model the node does not run is not its to release.
	reply, err = h.js.Conn().Request(h.names.NodeRelease("node-a"), []byte("sales"), time.Minute)
	require.NoError(t, err)
	require.Contains(t, string(reply.Data), "does not run on node node-a")
}

func TestSizeClassAdvertisesItsCapability(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := node.Config{ID: "node-m", Capabilities: []string{"duckdb"}, Slots: 2, Dir: t.TempDir(), Size: "medium",
		Names: h.names, LeaseTTL: leaseTTL, WorkerTTL: natsboot.DefaultWorkerTTL}
	deps := node.Deps{JS: h.js, Models: h.models, Owners: h.owners, Workers: h.workers, Blobs: h.blobs,
		Log: slog.New(slog.NewTextHandler(h.logs, nil))}
	n, err := node.New(cfg, deps)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx, func() {}) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	require.Eventually(t, func() bool {
		e, err := h.workers.Get(context.Background(), "node-m")
		w := &teatreev1.Worker{}
		return err == nil && wire.Unmarshal(e.Value(), w) == nil && len(w.GetCapabilities()) == 2 && w.GetCapabilities()[1] == "size:medium"
	}, 10*time.Second, 20*time.Millisecond)

	for _, bad := range []node.Config{
		{Size: "huge"},
		{Size: "small", Capabilities: []string{"duckdb", "size:large"}},
	} {
		c := cfg
		c.Size, c.Capabilities = bad.Size, bad.Capabilities
		_, err := node.New(c, deps)
		require.ErrorContains(t, err, "size", "%+v", bad)
	}
}
