package node

import (
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// The node's DuckDB memory and threads are shared out per slot, so that
// however many models run, their instances stay within the node's budget.
func TestBudgetSharesPerSlot(t *testing.T) {
	c := Config{Slots: 10, Memory: 1 << 30, Threads: 4, Publications: 3}.budget(slog.Default())
	require.Equal(t, 10, c.Slots)
	require.Equal(t, "104857KiB", c.Manager.MemoryLimit)
	require.Equal(t, 1, c.Manager.Threads, "at least one thread each")
	require.NotNil(t, c.Manager.Publications)

	c = Config{Slots: 2, Memory: 1 << 30, Threads: 4}.budget(slog.Default())
	require.Equal(t, "524288KiB", c.Manager.MemoryLimit)
	require.Equal(t, 2, c.Manager.Threads)
}

// A budget too small for every slot runs fewer models at once rather than
// starving each one.
func TestBudgetTooSmallRunsFewerModels(t *testing.T) {
	c := Config{Slots: 1000, Memory: 80 << 20}.budget(slog.Default())
	require.Equal(t, 10, c.Slots)
	require.Equal(t, "8192KiB", c.Manager.MemoryLimit)
}
