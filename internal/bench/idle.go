package bench

import (
	"context"
	"fmt"
)

// idleModels compares the resident memory of a node with many registered,
// idle models with that of the same node empty.
func (r *runner) idleModels(ctx context.Context) error {
	t, err := r.startTeatree(ctx, "idle-models", stackOptions{})
	if err != nil {
		return err
	}
	defer t.stop()
	empty := settledRSS()
	n := r.sz.idleModels
	r.stepf("  registering %d models", n)
	if err := r.profile("idle-models", func() error { return t.createModels(ctx, specs(modelIDs("idle", n))) }); err != nil {
		return err
	}
	full := settledRSS()
	r.add(Result{Scenario: "idle models", Variant: fmt.Sprintf("%d registered models vs none", n), Unit: "MiB RSS",
		Teatree: full, Baseline: empty, BaselineName: "empty node", Target: "< 50 MiB more than an empty node",
		Note: fmt.Sprintf("%.1f MiB more, %.1f KiB per model; the whole process (NATS server included)", full-empty, (full-empty)*1024/float64(n))},
		func(x Result) bool { return x.Teatree-x.Baseline < 50 })
	return nil
}
