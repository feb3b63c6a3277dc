package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// owner returns the node holding model's lease in tt_owners, "" if none.
func owner(t *testing.T, js jetstream.JetStream, model string) string {
	t.Helper()
	var l struct {
		Node string `json:"node"`
	}
	if !kvGet(t, js, "tt_owners", model, &l) {
		return ""
	}
	return l.Node
}

// modelVersion returns the newest version tt_models names for model.
func modelVersion(t *testing.T, js jetstream.JetStream, model string) uint64 {
	t.Helper()
	var spec struct {
		Version uint64 `json:"version"`
	}
	kvGet(t, js, "tt_models", model, &spec)
	return spec.Version
}

func kvGet(t *testing.T, js jetstream.JetStream, bucket, key string, v any) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bucket)
	require.NoError(t, err)
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return false
	}
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(e.Value(), v), string(e.Value()))
	return true
}

// waitAcks waits until at least n requests are acknowledged.
func waitAcks(t *testing.T, l *ledger, n int64, what string) {
	t.Helper()
	require.Eventually(t, func() bool { return l.acks.Load() >= n }, 90*time.Second, 5*time.Millisecond,
		"%s: only %d of %d requests acknowledged", what, l.acks.Load(), n)
}

// TestFencingSIGSTOP pauses the node that holds a model past its lease,
// lets the other node take the model over and publish versions, then
// resumes the first. Two nodes share one blob store and one nats-server;
// gateway, dispatcher and notifier run in a third process. Whatever the
// stale holder does after it resumes, every acknowledged row is applied
// exactly once, every request has exactly one notification that agrees
// with the final state, and every kept version is what its manifest says.
func TestFencingSIGSTOP(t *testing.T) {
	t.Parallel()
	const model = "fence"
	c := newCluster(t)
	front := c.serve("front", []string{"gateway", "dispatcher", "notifier"})
	nodes := map[string]*proc{"n1": c.node("n1"), "n2": c.node("n2")}
	createModel(t, c, `{"id":"fence","snapshot":{"interval_ms":200}}`)
	_, js := connectNATS(t, c.nats.url())

	l := newLedger(model)
	var stop atomic.Bool
	// A steady trickle, so that rows flow before, during and after the
	// pause without the log growing faster than a node applies it.
	gate := func() bool { time.Sleep(5 * time.Millisecond); return !stop.Load() }
	wait := l.publishers(t, 2, natsSender(js, model), gate, time.Now().Add(3*time.Minute))

	waitAcks(t, l, 200, "before the pause")
	var held string
	require.Eventually(t, func() bool { held = owner(t, js, model); return held != "" }, time.Minute, 10*time.Millisecond, "nobody holds %s", model)
	other := map[string]string{"n1": "n2", "n2": "n1"}[held]
	require.NotEmpty(t, other, "lease held by %q, not a node of this test", held)
	t.Logf("SIGSTOP %s (holds %s at version %d, %d acks)", held, model, modelVersion(t, js, model), l.acks.Load())
	nodes[held].signal(syscall.SIGSTOP)

	require.Eventually(t, func() bool { return owner(t, js, model) == other }, time.Minute, 10*time.Millisecond,
		"%s did not take %s over from the paused %s", other, model, held)
	taken := modelVersion(t, js, model)
	require.Eventually(t, func() bool { return modelVersion(t, js, model) >= taken+2 }, time.Minute, 10*time.Millisecond,
		"%s took %s over at version %d but published no 2 versions", other, model, taken)
	t.Logf("SIGCONT %s (%s holds %s at version %d, %d acks)", held, other, model, modelVersion(t, js, model), l.acks.Load())
	nodes[held].signal(syscall.SIGCONT)

	// Let the resumed node act on what it believed while rows keep coming
	// and the new holder keeps publishing.
	resumed := modelVersion(t, js, model)
	waitAcks(t, l, l.acks.Load()+300, "after the pause")
	require.Eventually(t, func() bool { return modelVersion(t, js, model) >= resumed+2 }, time.Minute, 10*time.Millisecond,
		"no 2 versions after %s resumed", held)
	stop.Store(true)
	wait()
	requireAlive(t, c.nats.proc, front, nodes["n1"], nodes["n2"])
	checkExactlyOnce(t, js, c, c.blobs, l)
}
