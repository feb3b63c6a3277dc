package node

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The node's DuckDB memory and threads are shared out per slot, so that
// however many models run, their instances stay within the node's budget.
func TestSharesPerSlot(t *testing.T) {
	s := Config{Slots: 10, Memory: 1 << 30, Threads: 4, Publications: 3}.shares()
	require.Equal(t, shares{limit: 1 << 30 / 10, work: 10, threads: 1, publications: 3}, s, "at least one thread each")

	s = Config{Slots: 2, Memory: 1 << 30, Threads: 4, Publications: 1}.shares()
	require.Equal(t, shares{limit: 1 << 29, work: 2, threads: 2, publications: 1}, s)
}

// A budget too small to give every slot the least limit keeps the slots
// but lets only as many models work at once as the budget holds.
func TestSharesTooSmallBoundWork(t *testing.T) {
	s := Config{Slots: 1000, Memory: 640 << 20, Threads: 2, Publications: 2}.shares()
	require.Equal(t, shares{limit: minModelMemory, work: 10, threads: 1, publications: 2}, s)
}

// However much memory there is, models work at once only a few per thread:
// more leave each so little CPU that small requests run past their
// deadlines.
func TestSharesBoundWorkByThreads(t *testing.T) {
	s := Config{Slots: 500, Memory: 64 << 30, Threads: 2, Publications: 2}.shares()
	require.Equal(t, 2*workPerThread, s.work)
}
