package node_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/services/dispatcher"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// lastSeq is the newest sequence of a bucket's stream: it grows with every
// write to the bucket.
func lastSeq(t *testing.T, kv jetstream.KeyValue) uint64 {
	t.Helper()
	st, err := kv.Status(context.Background())
	require.NoError(t, err)
	return st.(*jetstream.KeyValueBucketStatus).StreamInfo().State.LastSeq
}

// heartbeats waits until node has heartbeaten n more times than at rev.
func (h *harness) heartbeats(node string, rev uint64, n uint64) {
	h.t.Helper()
	require.Eventually(h.t, func() bool {
		e, err := h.workers.Get(context.Background(), node)
		return err == nil && e.Revision() >= rev+n
	}, 10*time.Second, 20*time.Millisecond, "%s did not heartbeat %d times; logs:\n%s", node, n, h.logs)
}

// TestManyLeasesCostNoWritesPerHeartbeat holds 200 models on one node: its
// heartbeat keeps them all, so tt_owners is not written while the node
// heartbeats three times (each heartbeat renewed every lease of old).
func TestManyLeasesCostNoWritesPerHeartbeat(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	h.manager = dbmanager.Config{Threads: 1, MemoryLimit: "32MB"}
	epochs := map[string]uint64{}
	for i := range 200 {
		m := fmt.Sprintf("m%03d", i)
		h.createModel(m)
		epochs[m] = h.grant(m, "node-a")
	}
	h.run("node-a")
	require.Eventually(t, func() bool {
		for m, epoch := range epochs {
			if spec, _, err := catalog.GetModel(ctx, h.models, m); err != nil || spec.GetLeaseEpoch() != epoch {
				return false
			}
		}
		return true
	}, 2*time.Minute, 100*time.Millisecond, "not every db-manager took its model over; logs:\n%s", h.logs)

	written := lastSeq(t, h.owners)
	hb, err := h.workers.Get(ctx, "node-a")
	require.NoError(t, err)
	h.heartbeats("node-a", hb.Revision(), 3)
	require.Equal(t, written, lastSeq(t, h.owners), "leases written while the node only heartbeats")
	for m, epoch := range epochs {
		l, _, err := catalog.GetLease(ctx, h.owners, m)
		require.NoError(t, err)
		require.Equal(t, epoch, l.GetEpoch(), "%s: the lease holds", m)
	}
}

// bucket opens a KV bucket that Setup made.
func (h *harness) bucket(name string) jetstream.KeyValue {
	h.t.Helper()
	kv, err := h.js.KeyValue(context.Background(), name)
	require.NoError(h.t, err)
	return kv
}

// runDispatcher runs a dispatcher until the test ends.
func (h *harness) runDispatcher() {
	h.t.Helper()
	d := dispatcher.New(dispatcher.Config{Names: h.names, LeaseTTL: leaseTTL, WorkerTTL: natsboot.DefaultWorkerTTL},
		dispatcher.Deps{JS: h.js, Models: h.models, Owners: h.owners, Workers: h.workers, Functions: h.bucket(h.names.FunctionsBucket()),
			Compute: h.bucket(h.names.ComputeBucket()), Blobs: h.blobs, Log: slog.New(slog.NewTextHandler(h.logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	h.t.Cleanup(func() {
		cancel()
		require.NoError(h.t, <-done)
	})
	select {
	case <-ready:
	case err := <-done:
		h.t.Fatalf("dispatcher stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("dispatcher not ready")
	}
}

// TestNodeWhoseHeartbeatStopsLosesItsModels cuts a running node's
// heartbeats and nothing else: it stops its db-managers once its newest
// heartbeat is a lease TTL old, the dispatcher takes its lease back, and
// the next mutation gets the model placed on the other node under a new
// epoch.
func TestNodeWhoseHeartbeatStopsLosesItsModels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	h.createModel("sales")
	epoch := h.grant("sales", "node-a")
	// node-a heartbeats through a connection of its own, which the test
	// closes: the node runs on, its heartbeats fail.
	nc, err := nats.Connect(h.url)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	workers, err := js.KeyValue(ctx, h.names.WorkersBucket())
	require.NoError(t, err)
	h.start("node-a", t.TempDir(), workers)
	h.publishSQL("sales", "r1", "create table t (x int)")
	require.Equal(t, subject.StatusApplied, h.outcome("sales", "r1").GetStatus())
	h.start("node-b", t.TempDir(), h.workers)
	h.runDispatcher()

	nc.Close()
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), "heartbeat lapsed past the lease ttl; stopping every db-manager")
	}, 10*time.Second, 20*time.Millisecond, "node-a runs on without heartbeats; logs:\n%s", h.logs)
	require.Eventually(t, func() bool {
		l, _, err := catalog.GetLease(ctx, h.owners, "sales")
		return err == nil && l == nil
	}, 10*time.Second, 20*time.Millisecond, "the dispatcher did not take node-a's lease back; logs:\n%s", h.logs)
	h.publishSQL("sales", "r2", "insert into t values (1)")
	s := h.outcome("sales", "r2")
	require.Equal(t, subject.StatusApplied, s.GetStatus(), "%v", s.GetError())
	l, _, err := catalog.GetLease(ctx, h.owners, "sales")
	require.NoError(t, err)
	require.Equal(t, "node-b", l.GetNode(), "logs:\n%s", h.logs)
	require.Greater(t, l.GetEpoch(), epoch)
	spec, _, err := catalog.GetModel(ctx, h.models, "sales")
	require.NoError(t, err)
	require.Equal(t, l.GetEpoch(), spec.GetLeaseEpoch(), "node-b took the model over: node-a's epoch is fenced off")
}

// setWorkersMaxMsgSize sets the message size limit of tt_workers' stream:
// a limit of 1 byte refuses every heartbeat.
func (h *harness) setWorkersMaxMsgSize(n int32) {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, "KV_"+h.names.WorkersBucket())
	require.NoError(h.t, err)
	cfg := s.CachedInfo().Config
	cfg.MaxMsgSize = n
	_, err = h.js.UpdateStream(ctx, cfg)
	require.NoError(h.t, err)
}

// TestNodeWhoseHeartbeatComesBackResumesItsLeases refuses a node's
// heartbeats for longer than the lease TTL and then lets them through:
// the node stops its db-managers, and once it heartbeats again it resumes
// the lease that still names it, at the same epoch.
func TestNodeWhoseHeartbeatComesBackResumesItsLeases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	h.createModel("sales")
	epoch := h.grant("sales", "node-a")
	h.run("node-a")
	h.publishSQL("sales", "r1", "create table t (x int)")
	require.Equal(t, subject.StatusApplied, h.outcome("sales", "r1").GetStatus())

	h.setWorkersMaxMsgSize(1)
	require.Eventually(t, func() bool {
		return strings.Contains(h.logs.String(), "heartbeat lapsed past the lease ttl; stopping every db-manager")
	}, 10*time.Second, 20*time.Millisecond, "node-a runs on without heartbeats; logs:\n%s", h.logs)
	started := strings.Count(h.logs.String(), fmt.Sprintf("msg=\"db-manager started\" model=sales epoch=%d ", epoch))
	h.setWorkersMaxMsgSize(-1)

	require.Eventually(t, func() bool {
		return strings.Count(h.logs.String(), fmt.Sprintf("msg=\"db-manager started\" model=sales epoch=%d ", epoch)) > started
	}, 10*time.Second, 20*time.Millisecond, "node-a did not resume its lease; logs:\n%s", h.logs)
	h.publishSQL("sales", "r2", "insert into t values (1)")
	s := h.outcome("sales", "r2")
	require.Equal(t, subject.StatusApplied, s.GetStatus(), "%v", s.GetError())
	l, _, err := catalog.GetLease(ctx, h.owners, "sales")
	require.NoError(t, err)
	require.Equal(t, epoch, l.GetEpoch(), "the lease was never written meanwhile")
}
