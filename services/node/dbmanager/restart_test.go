package dbmanager_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// A db-manager stopped at any point and started again on the same
// directory applies every request exactly once; the outcomes it announces
// again after a restart are marked as a replay.
func TestExactlyOnceAcrossRestarts(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	dir := t.TempDir()
	smallBatches := func(c *dbmanager.Config) { c.MaxBatchMessages = 7 }

	const total = 500
	next := 1
	publish := func(upTo int) {
		for ; next <= upTo; next++ {
			h.publish(t, "m", ndjsonRows(subject.OpAppend, "t", fmt.Sprintf("r-%d", next),
				fmt.Sprintf(`{"n": %d, "half": %d}`, next, next%2)))
		}
	}
	countApplied := func() int { return len(outcomes.byID()) }

	// Three incarnations, each stopped while requests are waiting.
	publish(150)
	run := h.start(t, l, dir, smallBatches)
	require.Eventually(t, func() bool { return countApplied() >= 20 }, waitFor, tick)
	run.stop(t)
	t.Logf("first run stopped after %d outcomes", countApplied())

	publish(300)
	run = h.start(t, l, dir, smallBatches)
	require.Eventually(t, func() bool { return countApplied() >= 170 }, waitFor, tick)
	run.stop(t)
	t.Logf("second run stopped after %d outcomes", countApplied())

	publish(420)
	run = h.start(t, l, dir, smallBatches)
	publish(total) // while it runs
	outcomes.await(t, ids("r-", 1, total)...)
	run.stop(t)

	for id, os := range outcomes.byID() {
		live := 0
		for _, o := range os {
			requireApplied(t, o, 1)
			require.Equal(t, os[0].GetSeq(), o.GetSeq(), "request %s: every outcome names the same seq", id)
			if !o.replay {
				live++
			}
		}
		require.LessOrEqual(t, live, 1, "request %s: applied once, announced live at most once", id)
	}
	require.Len(t, outcomes.byID(), total)

	db := openCopy(t, localFile(dir))
	var n, distinct, sum, halves int
	queryRow(t, db, "SELECT count(*), count(DISTINCT n), sum(n), sum(half) FROM t", &n, &distinct, &sum, &halves)
	require.Equal(t, total, n)
	require.Equal(t, total, distinct)
	require.Equal(t, total*(total+1)/2, sum)
	require.Equal(t, total/2, halves)
	var recorded int
	queryRow(t, db, "SELECT count(DISTINCT request_id) FROM _tt_requests", &recorded)
	require.Equal(t, total, recorded)
}
