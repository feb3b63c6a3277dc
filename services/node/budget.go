package node

import (
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"syscall"

	"github.com/teatree-dev/teatree/pkg/sizeclass"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// minModelMemory is the least DuckDB memory limit a model is given: DuckDB's
// JSON reader, which NDJSON appends go through, allocates 32 MiB buffers.
const minModelMemory = 64 << 20

// workPerThread is how many models may run DuckDB work at once per thread
// of the node's budget.
const workPerThread = 8

// shares is how the node's resources are shared among its models.
type shares struct {
	// limit is each model's DuckDB memory limit, in bytes.
	limit int64
	// work is how many models may run DuckDB work at once.
	work, threads, publications int
}

// shares divides the node's resources. Memory (the DuckDB memory of all its
// writers together) gives each model a limit of Memory/Slots, at least
// minModelMemory; when that is more than an equal share, only Memory/limit
// models work at once (an open model between batches holds little), so
// their DuckDB memory together stays within Memory, and never more than
// workPerThread per thread. Threads are divided by Slots, at least one
// each.
func (c Config) shares() shares {
	mem := c.Memory
	if mem <= 0 {
		mem = physicalMemory() / 2
	}
	s := shares{limit: max(mem/int64(c.Slots), minModelMemory), threads: c.Threads, publications: c.Publications}
	if s.threads <= 0 {
		s.threads = runtime.NumCPU()
	}
	// Work at once is bounded by the threads too: 188 models applying at
	// once on 2 cores gave each so little CPU that small requests ran past
	// their deadlines; a request's deadline starts once its model works.
	s.work = int(min(max(1, mem/s.limit), int64(workPerThread*s.threads)))
	s.threads = max(1, s.threads/c.Slots)
	if s.publications <= 0 {
		s.publications = runtime.NumCPU()
	}
	return s
}

// sized fills Memory and Threads, where unset, from the node's size class
// and adds the class to the capabilities it advertises.
func (c Config) sized() Config {
	class, err := sizeclass.Lookup(c.Size)
	if c.Size == "" || err != nil {
		return c
	}
	if c.Memory <= 0 {
		c.Memory = class.Memory
	}
	if c.Threads <= 0 {
		c.Threads = class.Threads
	}
	if capability := sizeclass.Capability(c.Size); !slices.Contains(c.Capabilities, capability) {
		c.Capabilities = append(slices.Clone(c.Capabilities), capability)
	}
	return c
}

// budget sets the Manager template from the node's shares.
func (c Config) budget(log *slog.Logger) Config {
	s := c.shares()
	if s.work < c.Slots {
		log.Info("the memory budget lets fewer models work at once than run",
			"memory", c.Memory, "slots", c.Slots, "model_memory_limit", s.limit, "working_at_once", s.work)
	}
	c.Manager.MemoryLimit = fmt.Sprintf("%dKiB", s.limit>>10)
	c.Manager.Threads = s.threads
	c.Manager.Budget = dbmanager.NewBudget(s.work, s.publications)
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
