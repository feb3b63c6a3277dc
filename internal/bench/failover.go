package bench

import (
	"context"
	"fmt"
	"time"
)

// failover kills -9 the node that holds every model of the run, each
// model active, and measures, per model, the time from the kill to a
// mutation sent at the kill being applied by the other node. Beside it in
// the same run: the lease TTL, which is the floor of detection, and the
// same measure when the killed node is restarted in place instead (here
// the survivor, after it took the models over).
func (r *runner) failover(ctx context.Context) error {
	c, err := r.startCluster(ctx, "failover", clusterOptions{s3: true, leaseTTL: r.sz.leaseTTL})
	if err != nil {
		return err
	}
	defer c.stop()
	ids := modelIDs("f", r.sz.failoverModels)
	r.stepf("  a 3-server NATS cluster, S3 blobs, lease TTL %s; node a takes %d models", r.sz.leaseTTL, len(ids))
	t, err := r.startTeatree(ctx, "failover", stackOptions{cluster: c})
	if err != nil {
		return err
	}
	defer t.stop()
	a, err := c.startNode(ctx, "node-a", 1000)
	if err != nil {
		return err
	}
	if err := t.createModels(ctx, specs(ids)); err != nil {
		return err
	}
	if err := r.warm(ctx, t, ids); err != nil {
		return err
	}
	b, err := c.startNode(ctx, "node-b", 1000)
	if err != nil {
		return err
	}
	r.stepf("  kill -9 node a; node b takes its models over")
	a.kill()
	over, err := r.applyingAgain(ctx, t, ids, "after-kill", time.Now())
	if err != nil {
		return fmt.Errorf("after node a was killed: %w", err)
	}
	r.stepf("  kill -9 node b and restart it in place")
	b.kill()
	killed := time.Now()
	if err := b.start(ctx); err != nil {
		return err
	}
	restarted, err := r.applyingAgain(ctx, t, ids, "after-restart", killed)
	if err != nil {
		return fmt.Errorf("after node b was restarted: %w", err)
	}
	fo, rs := percentiles(over, 0.5, 1), percentiles(restarted, 0.5, 1)
	ttl := r.sz.leaseTTL.Seconds()
	variant := fmt.Sprintf("kill -9 of the node holding %d active models, until all apply again on another", len(ids))
	note := fmt.Sprintf("p50 %.2f s, max %.2f s from the kill to the model's first mutation applied (sent at the kill); the same node killed -9 and restarted in place: p50 %.2f s, max %.2f s",
		fo[0]/1000, fo[1]/1000, rs[0]/1000, rs[1]/1000)
	r.add(Result{Scenario: "failover", Variant: variant, Unit: "s", Teatree: fo[1] / 1000, Baseline: ttl, BaselineName: "lease TTL",
		P50: fo[0], P99: fo[1], Count: len(over), Target: "max ≤ 2× the lease TTL", Note: note},
		func(x Result) bool { return x.Ratio <= 2 })
	r.add(Result{Scenario: "failover", Variant: "the same, beside the node killed -9 and restarted in place", Unit: "s",
		Teatree: fo[1] / 1000, Baseline: rs[1] / 1000, BaselineName: "restart in place", P50: fo[0], P99: fo[1], Count: len(over), Note: note}, nil)
	return nil
}

// applyingAgain sends each model one small mutation, all at once, and
// returns for each the time from since to its applied notification.
func (r *runner) applyingAgain(ctx context.Context, t *teatree, ids []string, prefix string, since time.Time) ([]time.Duration, error) {
	times := make([]time.Duration, len(ids))
	timeout := 2*r.sz.leaseTTL + r.sz.maxPhase
	err := parallel(ctx, len(ids), len(ids), func(i int) error {
		id := fmt.Sprintf("%s-%d", prefix, i)
		_, at, err := t.mutate(ctx, ids[i], id, smallMutation(t.names, "", ids[i], id, i), timeout)
		times[i] = at.Sub(since)
		return err
	})
	return times, err
}
