package node_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestRevokedLeaseStopsTheDBManager(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	h.createModel("sales")
	epoch := h.grant("sales", "node-a")
	h.run("node-a")
	h.publishSQL("sales", "r1", "create table t (x int)")
	require.Equal(t, subject.StatusApplied, h.outcome("sales", "r1").GetStatus())

	// Revoked: the node sees the lease go, which stops the db-manager.
	require.NoError(t, h.owners.Delete(ctx, "sales"))
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), "lease lost; stopping db-manager") },
		10*time.Second, 20*time.Millisecond, "logs:\n%s", h.logs)
	h.publishSQL("sales", "r2", "insert into t values (1)")
	require.Never(t, func() bool { return h.findOutcome("sales", "r2") != nil }, 1500*time.Millisecond, 50*time.Millisecond,
		"a mutation is applied without the lease")

	// The lost lease is not fatal: the node still heartbeats, and a new
	// lease starts a new db-manager that applies what waited.
	hb, err := h.workers.Get(ctx, "node-a")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		e, err := h.workers.Get(ctx, "node-a")
		return err == nil && e.Revision() > hb.Revision()
	}, 10*time.Second, 20*time.Millisecond, "no heartbeat after the lost lease")
	require.Greater(t, h.grant("sales", "node-a"), epoch)
	s := h.outcome("sales", "r2")
	require.Equal(t, subject.StatusApplied, s.GetStatus(), "%v", s.GetError())
}

func TestLeaseGrantedAgainRunsUnderTheNewEpoch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	h.createModel("sales")
	epoch := h.grant("sales", "node-a")
	h.run("node-a")
	h.publishSQL("sales", "r1", "create table t (x int)")
	require.Equal(t, subject.StatusApplied, h.outcome("sales", "r1").GetStatus())

	// The lease is taken back and granted to the same node again.
	require.NoError(t, h.owners.Delete(ctx, "sales"))
	epoch2, _, err := catalog.Grant(ctx, h.owners, "sales", "node-a")
	require.NoError(t, err)
	require.Greater(t, epoch2, epoch)

	// The node runs under the new lease.
	require.Eventually(t, func() bool { return strings.Contains(h.logs.String(), fmt.Sprintf("epoch=%d applied_seq=", epoch2)) },
		10*time.Second, 20*time.Millisecond, "no db-manager at epoch %d; logs:\n%s", epoch2, h.logs)
	h.publishSQL("sales", "r2", "insert into t values (1)")
	s := h.outcome("sales", "r2")
	require.Equal(t, subject.StatusApplied, s.GetStatus(), "%v", s.GetError())
}
