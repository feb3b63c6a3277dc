package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/teatree-dev/teatree/pkg/blob"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// restore measures a node with no local file taking a model over: it
// restores the model's newest version from S3 and replays the requests
// sent after it. Node a makes the model and its version and stops
// (SIGTERM: it gives the lease up); once the dispatcher counts node a
// gone, the requests are sent while no node runs; then node b, with an
// empty --data, starts, and the time runs from its start to the last
// request's notification. Beside it in the same run: an S3 GetObject of
// the same model.duckdb to a local file with the AWS SDK, and cp of node
// a's copy.
func (r *runner) restore(ctx context.Context) error {
	c, err := r.startCluster(ctx, "restore", clusterOptions{s3: true, leaseTTL: r.sz.leaseTTL})
	if err != nil {
		return err
	}
	defer c.stop()
	t, err := r.startTeatree(ctx, "restore", stackOptions{cluster: c})
	if err != nil {
		return err
	}
	defer t.stop()
	a, err := c.startNode(ctx, "node-a", 100)
	if err != nil {
		return err
	}
	const model = "restore"
	r.stepf("  node a: a model of %d rows, and its version in S3", r.sz.restoreRows)
	version, err := t.createTable(ctx, &teatreev1.ModelSpec{Id: model}, r.sz.restoreRows, "")
	if err != nil {
		return err
	}
	local, err := filepath.Glob(filepath.Join(c.dir, a.id, "models", model, "*", "model.duckdb"))
	if err != nil || len(local) != 1 {
		return fmt.Errorf("node a's file of the model: found %d (%v)", len(local), err)
	}
	if err := a.terminate(); err != nil {
		return err
	}
	// A node that stopped leaves no word of it: the dispatcher counts it
	// live, and places the model there again, until its last heartbeat
	// is a lease TTL old. Wait that out, so that what is measured is the
	// restore, not a lease on a stopped node.
	r.stepf("  node a stopped; waiting %s for the dispatcher to count it gone", r.sz.leaseTTL+time.Second)
	time.Sleep(r.sz.leaseTTL + time.Second)
	n := r.sz.restoreRequests
	r.stepf("  %d single-row appends sent while no node runs; node b (empty --data) restores and replays them", n)
	tr, err := newTracker(t.nc, t.names, "replay", n, nil)
	if err != nil {
		return err
	}
	sent := time.Now()
	for k := range n {
		tr.issue(k, sent)
		if _, err := t.js.PublishMsgAsync(smallMutation(t.names, "", model, tr.id(k), k)); err != nil {
			return err
		}
	}
	select {
	case <-t.js.PublishAsyncComplete():
	case <-time.After(r.sz.maxPhase):
		return fmt.Errorf("%d appends not acknowledged within %s", n, r.sz.maxPhase)
	}
	started := time.Now()
	if _, err := c.startNode(ctx, "node-b", 100); err != nil {
		return err
	}
	if err := tr.wait(ctx, t, 5*r.sz.maxPhase); err != nil {
		return err
	}
	res := tr.result(started)
	first := slices.Min(res.lats) - started.Sub(sent)
	if res.failed > 0 {
		return fmt.Errorf("replay: %s", res.note(n, r.sz.maxPhase))
	}

	fi, err := os.Stat(local[0])
	if err != nil {
		return err
	}
	get, err := timeGetObject(ctx, c, blob.Key(model, version, "model.duckdb"), filepath.Join(c.dir, "get.duckdb"))
	if err != nil {
		return fmt.Errorf("baseline GetObject: %w", err)
	}
	cp, err := timeCp(local[0], filepath.Join(c.dir, "cp.duckdb"))
	if err != nil {
		return fmt.Errorf("baseline cp: %w", err)
	}
	mb := float64(fi.Size()) / (1 << 20)
	variant := fmt.Sprintf("restore a %.0f MiB model from S3 and replay %d requests", mb, n)
	note := fmt.Sprintf("from node b's start: %.2f s to the first replayed request applied (placement and restore), %.2f s to the last; node b is a process of its own, its start counted",
		first.Seconds(), res.elapsed.Seconds())
	r.add(Result{Scenario: "restore", Variant: variant, Unit: "s", Teatree: res.elapsed.Seconds(), Baseline: get.Seconds(),
		BaselineName: "S3 GetObject", Count: res.done, Notifications: res.notifications(), Note: note}, nil)
	r.add(Result{Scenario: "restore", Variant: variant + ", beside cp", Unit: "s", Teatree: res.elapsed.Seconds(), Baseline: cp.Seconds(),
		BaselineName: "cp", Count: res.done, Notifications: res.notifications(), Note: note}, nil)
	return nil
}

// timeGetObject downloads key from the cluster's bucket to path with the
// AWS SDK, as a plain client would (without fsync, as cp).
func timeGetObject(ctx context.Context, c *clusterEnv, key, path string) (time.Duration, error) {
	start := time.Now()
	out, err := c.s3.Client().GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(c.bucket), Key: aws.String(key)})
	if err != nil {
		return 0, err
	}
	defer out.Body.Close()
	defer os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	if _, err := io.Copy(f, out.Body); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
