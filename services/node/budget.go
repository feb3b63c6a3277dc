package node

import (
	"fmt"
	"log/slog"
	"runtime"
	"syscall"

	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// minModelMemory is the least DuckDB memory a running model is given: below
// it a checkpoint of a modest table no longer fits.
const minModelMemory = 8 << 20

// budget shares the node's resources among the models it runs: Memory and
// Threads (the DuckDB memory and threads of all its writers together) are
// divided by Slots, so that however many models run, their DuckDB instances
// together stay within them; publications at once are bounded node-wide.
// When Memory cannot give every slot minModelMemory, the node runs fewer
// models at once and says so.
func (c Config) budget(log *slog.Logger) Config {
	mem := c.Memory
	if mem <= 0 {
		mem = physicalMemory() / 2
	}
	if per := mem / int64(c.Slots); per < minModelMemory {
		slots := int(max(1, mem/minModelMemory))
		log.Warn("the memory budget cannot give every slot its minimum: running fewer models at once",
			"memory", mem, "slots", c.Slots, "runs_at_once", slots, "min_per_model", minModelMemory)
		c.Slots = slots
	}
	threads := c.Threads
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	publications := c.Publications
	if publications <= 0 {
		publications = runtime.NumCPU()
	}
	c.Manager.MemoryLimit = fmt.Sprintf("%dKiB", mem/int64(c.Slots)>>10)
	c.Manager.Threads = max(1, threads/c.Slots)
	c.Manager.Publications = dbmanager.NewPublications(publications)
	return c
}

// physicalMemory is the machine's memory in bytes.
func physicalMemory() int64 {
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		return 8 << 30
	}
	return int64(si.Totalram) * int64(si.Unit)
}
