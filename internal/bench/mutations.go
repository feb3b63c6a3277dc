package bench

import (
	"context"
	"fmt"
	"time"

	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func modelIDs(prefix string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return ids
}

func specs(ids []string) []*teatreev1.ModelSpec {
	s := make([]*teatreev1.ModelSpec, len(ids))
	for i, id := range ids {
		s[i] = &teatreev1.ModelSpec{Id: id}
	}
	return s
}

// startWarm starts teatree, creates the models and warms them up.
func (r *runner) startWarm(ctx context.Context, name string, o stackOptions, ids []string) (*teatree, error) {
	t, err := r.startWithModels(ctx, name, o, ids)
	if err != nil {
		return nil, err
	}
	if err := r.warm(ctx, t, ids); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// startWithModels starts teatree and creates the models.
func (r *runner) startWithModels(ctx context.Context, name string, o stackOptions, ids []string) (*teatree, error) {
	t, err := r.startTeatree(ctx, name, o)
	if err != nil {
		return nil, err
	}
	r.stepf("  creating %d models", len(ids))
	if err := t.createModels(ctx, specs(ids)); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

// warm sends each model a small mutation, so that their db-managers run
// and their table exists: what is measured next is the steady state, not
// the first append creating a table.
func (r *runner) warm(ctx context.Context, t *teatree, ids []string) error {
	if _, err := r.closedLoop(ctx, t, ids, max(len(ids), 200), "warm", 5*r.sz.maxPhase); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	return nil
}

// mutationRun measures small mutations over models under one sync policy,
// against the raw JetStream baseline with the same policy. With memory,
// it also measures what the warm-up added to the process's memory: every
// model active and recently written against the same models created only.
func (r *runner) mutationRun(ctx context.Context, scenario string, syncAlways bool, nModels, n int, target float64, memory bool) (loadResult, error) {
	ids := modelIDs("m", nModels)
	t, err := r.startWithModels(ctx, scenario+"-"+syncName(syncAlways), stackOptions{syncAlways: syncAlways}, ids)
	if err != nil {
		return loadResult{}, err
	}
	defer t.stop()
	idleRSS, idleThreads := 0.0, 0
	if memory {
		idleRSS, idleThreads = settledRSS(), threads()
	}
	if err := r.warm(ctx, t, ids); err != nil {
		return loadResult{}, err
	}
	if memory {
		active := settledRSS()
		perModel := (active - idleRSS) / float64(nModels)
		r.add(Result{Scenario: "active model memory", Variant: fmt.Sprintf("%d models written vs created only", nModels),
			Unit: "MiB RSS", Teatree: active, Baseline: idleRSS, BaselineName: "same models never written", Count: nModels,
			Target: "< 2 MiB per active model",
			Note: fmt.Sprintf("%.2f MiB per active, recently written model; %d threads (%d before the writes); the whole process, NATS server included",
				perModel, threads(), idleThreads)},
			func(Result) bool { return perModel < 2 })
	}
	r.stepf("  teatree: %d single-row appends, %d publishers × %d in flight, %s", n, publishers, window, syncName(syncAlways))
	var res loadResult
	err = r.profile(scenario+"-"+syncName(syncAlways), func() (err error) {
		res, err = r.closedLoop(ctx, t, ids, n, "run", 3*r.sz.maxPhase)
		return err
	})
	if err != nil {
		return loadResult{}, err
	}
	r.stepf("  baseline: the same messages, nats.go async publish to a bare stream")
	base, err := r.baselineLoop(ctx, syncAlways, ids, n)
	if err != nil {
		return loadResult{}, fmt.Errorf("baseline: %w", err)
	}
	p := percentiles(res.lats, 0.5, 0.99, 0.999)
	variant := syncName(syncAlways)
	if nModels > 1 {
		variant = fmt.Sprintf("%d models, %s", nModels, variant)
	}
	r.add(Result{Scenario: scenario, Variant: variant, Unit: "req/s", HigherIsBetter: true,
		Teatree: res.rate(), Baseline: base.rate(), BaselineName: "raw JetStream",
		P50: p[0], P99: p[1], P999: p[2], Count: res.done, Notifications: res.notifications(),
		Target: fmt.Sprintf("≥ %.1f× raw JetStream", target), Note: res.note(n, r.sz.maxPhase)},
		func(x Result) bool { return x.Ratio >= target && res.failed == 0 })
	return res, nil
}

func (r *runner) smallMutations(ctx context.Context) error {
	byPolicy := map[bool]float64{}
	// The targets of issue 10: fsyncing every write costs teatree what it
	// costs JetStream; without fsyncs, teatree's own work shows.
	targets := map[bool]float64{true: 0.8, false: 0.3}
	for _, always := range []bool{true, false} {
		res, err := r.mutationRun(ctx, "small mutations, one model", always, 1, r.sz.smallRequests, targets[always], false)
		if err != nil {
			return err
		}
		byPolicy[always] = res.rate()
	}
	r.add(Result{Scenario: "sync policy", Variant: "always vs interval", Unit: "req/s", HigherIsBetter: true,
		Teatree: byPolicy[true], Baseline: byPolicy[false], BaselineName: "teatree, sync interval",
		Note: "the price of fsyncing every JetStream write before acknowledging it"}, nil)
	return nil
}

func (r *runner) manyModels(ctx context.Context) error {
	_, err := r.mutationRun(ctx, "small mutations, many models", true, r.sz.manyModels, r.sz.manyRequests, 0.5, true)
	return err
}

// latencyUnderLoad measures the maximum rate on one model, then runs at
// 25%, 50% and 75% of it, open loop.
func (r *runner) latencyUnderLoad(ctx context.Context) error {
	t, err := r.startWarm(ctx, "latency", stackOptions{syncAlways: true}, []string{"lat"})
	if err != nil {
		return err
	}
	defer t.stop()
	peak, err := r.closedLoop(ctx, t, []string{"lat"}, r.sz.smallRequests/2, "peak", r.sz.maxPhase)
	if err != nil {
		return err
	}
	maxRate := peak.rate()
	r.stepf("  maximum rate %.0f req/s (closed loop, sync always)", maxRate)
	for _, share := range []float64{0.25, 0.5, 0.75} {
		rate := share * maxRate
		var res loadResult
		err := r.profile(fmt.Sprintf("latency-%.0f", share*100), func() (err error) {
			res, err = r.openLoop(ctx, t, "lat", rate, r.sz.loadFor, fmt.Sprintf("load%.0f", share*100))
			return err
		})
		if err != nil {
			return err
		}
		p := percentiles(res.lats, 0.5, 0.99, 0.999)
		out := Result{Scenario: "latency under load", Variant: fmt.Sprintf("%.0f%% of max (%.0f req/s offered)", share*100, rate),
			Unit: "req/s", HigherIsBetter: true, Teatree: res.rate(), P50: p[0], P99: p[1], P999: p[2], Count: res.done,
			Notifications: res.notifications()}
		var target func(Result) bool
		if share == 0.5 {
			out.Target = "p99 < 20 ms"
			target = func(x Result) bool { return x.P99 < 20 }
		}
		r.add(out, target)
	}
	return nil
}

// coldStart measures the first request for a model whose db-manager was
// unloaded for being idle, one model at a time.
func (r *runner) coldStart(ctx context.Context) error {
	ids := modelIDs("cold", r.sz.coldModels)
	t, err := r.startWarm(ctx, "cold-start", stackOptions{syncAlways: true, idleTimeout: time.Second}, ids)
	if err != nil {
		return err
	}
	defer t.stop()
	r.stepf("  waiting for %d models to go idle", len(ids))
	owners, err := t.js.KeyValue(ctx, t.names.OwnersBucket())
	if err != nil {
		return err
	}
	deadline := time.Now().Add(r.sz.maxPhase)
	for {
		keys, err := owners.ListKeys(ctx)
		if err != nil {
			return err
		}
		held := 0
		for range keys.Keys() {
			held++
		}
		if held == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d models still loaded after %s", held, r.sz.maxPhase)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var lats []time.Duration
	ntf := &Notifications{}
	err = r.profile("cold-start", func() error {
		for i, id := range ids {
			res, err := r.closedLoop(ctx, t, []string{id}, 1, fmt.Sprintf("cold%d", i), r.sz.maxPhase)
			if err != nil {
				return err
			}
			lats = append(lats, res.lats...)
			ntf.add(res.notifications())
		}
		return nil
	})
	if err != nil {
		return err
	}
	p := percentiles(lats, 0.5, 0.99)
	r.add(Result{Scenario: "cold start", Variant: fmt.Sprintf("%d idle models", len(ids)), Unit: "ms (p50)",
		Teatree: p[0], P50: p[0], P99: p[1], Count: len(lats), Notifications: ntf, Target: "p50 < 100 ms"},
		func(x Result) bool { return x.P50 < 100 })
	return nil
}
