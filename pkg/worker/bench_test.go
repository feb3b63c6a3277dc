package worker_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/pkg/worker/workertest"
)

// BenchmarkTrivialJobs measures the protocol's own cost per job: pull,
// open the version in DuckDB, report started and done, write a one-row
// JSON result and ack, with 4 slots.
func BenchmarkTrivialJobs(b *testing.B) {
	e := workertest.New(b)
	evs := e.Watch(b)
	one := func(context.Context, *worker.Input) (worker.Output, error) {
		return worker.JSON([]map[string]any{{"ok": true}}), nil
	}
	e.Start(b, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{"one": one}})
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		e.Queue(b, e.Job(fmt.Sprintf("b%d", i), "one", nil, 1))
	}
	for i := range b.N {
		id := fmt.Sprintf("b%d", i)
		evs.WaitFor(b, id, "sales."+id+".1.done")
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "jobs/s")
	require.NotEmpty(b, evs.Of("b0"))
}
