package bench

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// clusterMutations measures aggregate small-mutation throughput with 1, 2
// and 3 node processes on the local 3-server cluster (every stream with 3
// replicas), beside raw JetStream publish throughput to a stream of 3
// replicas on the same cluster. Each run has fresh nodes and fresh models,
// all the nodes up before the models' first mutation, so that placement
// spreads the models over them; its models are deleted after it. On one machine the nodes and the servers
// share the same cores and disk: more nodes show the cost of the
// cluster, not a speedup.
func (r *runner) clusterMutations(ctx context.Context) error {
	c, err := r.startCluster(ctx, "cluster-mutations", clusterOptions{leaseTTL: r.sz.leaseTTL})
	if err != nil {
		return err
	}
	defer c.stop()
	t, err := r.startTeatree(ctx, "cluster-mutations", stackOptions{cluster: c})
	if err != nil {
		return err
	}
	defer t.stop()
	r.stepf("  baseline: the same messages, nats.go async publish to a stream of 3 replicas on the cluster")
	base, err := r.publishLoop(ctx, t.js, clusterServers, modelIDs("b", r.sz.clusterModels), r.sz.clusterRequests)
	if err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if err := t.js.DeleteStream(ctx, "BASELINE"); err != nil {
		return err
	}
	for k := 1; k <= clusterServers; k++ {
		var nodes []*nodeProc
		for i := range k {
			n, err := c.startNode(ctx, fmt.Sprintf("k%d-node-%d", k, i+1), 1000)
			if err != nil {
				return err
			}
			nodes = append(nodes, n)
		}
		ids := modelIDs(fmt.Sprintf("c%d-", k), r.sz.clusterModels)
		if err := t.createModels(ctx, specs(ids)); err != nil {
			return err
		}
		if err := r.warm(ctx, t, ids); err != nil {
			return err
		}
		r.stepf("  teatree on %d nodes: %d single-row appends over %d models, %d publishers × %d in flight",
			k, r.sz.clusterRequests, len(ids), publishers, window)
		var res loadResult
		err := r.profile(fmt.Sprintf("cluster-mutations-%d", k), func() (err error) {
			res, err = r.closedLoop(ctx, t, ids, r.sz.clusterRequests, fmt.Sprintf("run%d", k), r.sz.maxPhase)
			return err
		})
		if err != nil {
			return err
		}
		// The models go before their nodes: a stopped node's models are
		// placed on the nodes of the next run, which would restore them
		// while measured.
		if err := parallel(ctx, 16, len(ids), func(i int) error { return t.api.DeleteModel(ctx, ids[i]) }); err != nil {
			return fmt.Errorf("delete the models of %d nodes: %w", k, err)
		}
		for _, n := range nodes {
			if err := n.terminate(); err != nil {
				return err
			}
		}
		note := "One machine: the nodes, the three NATS servers and the load share its cores and disk, so this shows the cluster's overhead, not a speedup. " +
			res.note(r.sz.clusterRequests, r.sz.maxPhase)
		// Duplicates counts what TT_NTF holds, as the contract does; the
		// note tells what the bench's core subscription saw besides.
		twice, err := storedTwice(ctx, t, ids)
		if err != nil {
			return err
		}
		ntf := res.notifications()
		if res.duplicates > 0 {
			note += fmt.Sprintf(" %d second status notifications reached the bench's core subscription (published again; JetStream refused to store them), %d requests have two in TT_NTF.", res.duplicates, twice)
		}
		ntf.Duplicates = twice
		p := percentiles(res.lats, 0.5, 0.99, 0.999)
		note = strings.TrimSpace(note)
		r.add(Result{Scenario: "cluster small mutations", Variant: fmt.Sprintf("%d node(s), %d models, 3-server cluster, R3 streams", k, len(ids)),
			Unit: "req/s", HigherIsBetter: true, Teatree: res.rate(), Baseline: base.rate(), BaselineName: "raw JetStream R3",
			P50: p[0], P99: p[1], P999: p[2], Count: res.done, Notifications: ntf, Note: note}, nil)
	}
	return nil
}

// storedTwice counts the request subjects of models in TT_NTF that hold
// more than one message. The contract's exactly-once is about the stream;
// a core subscription also sees a publish the stream refused (a second
// status notification, published only if the subject holds none).
func storedTwice(ctx context.Context, t *teatree, models []string) (int, error) {
	stream, err := t.js.Stream(ctx, t.names.NtfStream())
	if err != nil {
		return 0, err
	}
	twice := 0
	for _, m := range models {
		info, err := stream.Info(ctx, jetstream.WithSubjectFilter(t.names.NtfRequest(m, "*")))
		if err != nil {
			return 0, err
		}
		for _, n := range info.State.Subjects {
			if n > 1 {
				twice++
			}
		}
	}
	return twice, nil
}
