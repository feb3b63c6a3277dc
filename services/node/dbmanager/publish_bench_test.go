package dbmanager_test

import (
	"fmt"
	"testing"
	"time"

	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// BenchmarkPublish measures one version of a model with a few small
// tables: the mutation that changes one of them, the staging, the Parquet
// of the changed table (links for the others), checksums, upload and the
// catalog commit, until the catalog names the version.
func BenchmarkPublish(b *testing.B) {
	h := newHarness(b)
	l := h.createModel(b, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{EveryMutations: 1, IntervalMs: 50, Keep: 2}})
	h.start(b, l, b.TempDir())
	// awaitSeq polls the catalog every millisecond (a benchmark, not a
	// test: the tick of require.Eventually would dominate the number).
	awaitSeq := func(seq uint64) {
		b.Helper()
		for deadline := time.Now().Add(waitFor); h.spec(b, "m").GetAppliedSeq() < seq; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				b.Fatalf("no version includes seq %d", seq)
			}
		}
	}
	const tables = 4
	for i := range tables {
		ack := h.publish(b, "m", csvRows(fmt.Sprintf("t%d", i), fmt.Sprintf("seed-%d", i), "id,name\n1,a\n2,b\n3,c\n"))
		awaitSeq(ack.Sequence)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		ack := h.publish(b, "m", csvRows(fmt.Sprintf("t%d", i%tables), fmt.Sprintf("row-%d", i), fmt.Sprintf("id,name\n%d,x\n", 10+i)))
		awaitSeq(ack.Sequence)
	}
}
