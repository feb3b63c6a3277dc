package dbmanager_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// A node that gets a model back does not trust its local file when another
// holder wrote the model in between: the file's requests after the newest
// version were applied by a holder the notifier stopped trusting, and may
// disagree with what the holder since applied and published (here: uuid()
// gives each application its own values). It starts from the newest
// version instead, so published facts never change.
func TestLocalFileOfAnEarlierEpochIsNotTrusted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l1 := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	h.publish(t, "m", sqlMutation("s1", `{"sql":"create table t (n int, v varchar)"}`))
	h.publish(t, "m", sqlMutation("s2", `{"sql":"insert into t select 1, uuid()::varchar"}`))
	third := h.publish(t, "m", sqlMutation("s3", `{"sql":"insert into t select 2, uuid()::varchar"}`))

	// n1 applies all three, then loses the model before its first version
	// is committed: n2 takes it over.
	var taken atomic.Bool
	l2 := make(chan lease, 1)
	dir1 := t.TempDir()
	r1 := h.start(t, l1, dir1, dbmanager.WithBeforeCommit(func(uint64) {
		if !taken.CompareAndSwap(false, true) {
			return
		}
		ctx := context.Background()
		if err := catalog.Release(ctx, h.owners, "m", l1.rev); err != nil {
			t.Errorf("release: %v", err)
		}
		epoch, rev, err := catalog.Grant(ctx, h.owners, "m", "n2")
		if err != nil {
			t.Errorf("grant: %v", err)
		}
		if _, err := catalog.TakeOver(ctx, h.models, "m", epoch); err != nil {
			t.Errorf("take over: %v", err)
		}
		l2 <- lease{model: "m", node: "n2", epoch: epoch, rev: rev}
	}))
	second := <-l2
	require.Eventually(t, func() bool { done, _ := r1.stopped(); return done }, waitFor, tick, "the stale holder keeps running")

	// n2 applies them again from the log and publishes.
	r2 := h.start(t, second, t.TempDir())
	spec := h.awaitVersion(t, "m", third.Sequence)
	published := queryStrings(t, openCopy(t, h.blobPath(blob.Key("m", spec.GetVersion(), blob.DuckDBFile))), "select n, v from t order by n")
	require.Len(t, published, 2)
	r2.stop(t)
	require.NoError(t, catalog.Release(testContext(t), h.owners, "m", second.rev))

	// n1 gets the model back, with its own file of the same applied_seq.
	l3 := h.grant(t, "m", "n1")
	h.start(t, l3, dir1)
	last := h.publish(t, "m", sqlMutation("s4", `{"sql":"insert into t values (3, 'x')"}`))
	spec = h.awaitVersion(t, "m", last.Sequence)
	got := queryStrings(t, openCopy(t, h.blobPath(blob.Key("m", spec.GetVersion(), blob.DuckDBFile))), "select n, v from t order by n")
	require.Equal(t, append(published, "3|x"), got, "the rows n2 published changed: n1 kept its own file")
}
