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
	"github.com/stretchr/testify/assert"
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
	// Versions are kept long enough for the final checks to see the ones a
	// stale holder could have touched.
	createModel(t, c, `{"id":"fence","snapshot":{"interval_ms":200,"keep":30}}`)

	// A filler table makes every version's files big enough that a node
	// spends much of its time publishing, so a pause lands mid-publication
	// (the stale write of a paused holder) more often than not.
	_, js := connectNATS(t, c.nats.url())
	l := newLedger(model)
	l.setup["filler"] = true
	publish(t, js, "tt.mut.fence.sql", model+".filler", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"sql":"create table filler as select i::BIGINT as i, (i * 7919) % 100003 as j from range(300000) r(i)"}`))
	st, _ := waitNotification(t, js, model, "filler")
	require.Equal(t, "applied", st.Status, "%+v", st)

	watcher := watchVersions(t, js, c.blobs, model)
	var stop atomic.Bool
	// A steady trickle, so that rows flow before, during and after each
	// pause without the log growing faster than a node applies it.
	gate := func() bool { time.Sleep(10 * time.Millisecond); return !stop.Load() }
	wait := l.publishers(t, 2, natsSender(js, model), gate, time.Now().Add(3*time.Minute))
	waitAcks(t, l, 100, "before the first pause")

	// Pause whoever holds the model, twice: the second pause hits the node
	// that took over from the first.
	for pause := range 2 {
		var held string
		require.Eventually(t, func() bool { held = owner(t, js, model); return held != "" }, time.Minute, 10*time.Millisecond, "nobody holds %s", model)
		other := map[string]string{"n1": "n2", "n2": "n1"}[held]
		require.NotEmpty(t, other, "lease held by %q, not a node of this test", held)
		// Pause it in the middle of writing a version when it can be
		// caught there: that is when a stale holder does harm.
		mid := waitPublishing(t, js, c.blobs, model, 20*time.Second)
		t.Logf("pause %d: SIGSTOP %s mid-publication=%v (holds %s at version %d, %d acks)", pause+1, held, mid, model, modelVersion(t, js, model), l.acks.Load())
		nodes[held].signal(syscall.SIGSTOP)

		require.Eventually(t, func() bool { return owner(t, js, model) == other }, time.Minute, 10*time.Millisecond,
			"%s did not take %s over from the paused %s", other, model, held)
		taken := modelVersion(t, js, model)
		require.Eventually(t, func() bool { return modelVersion(t, js, model) >= taken+2 }, time.Minute, 10*time.Millisecond,
			"%s took %s over at version %d but published no 2 versions", other, model, taken)
		t.Logf("pause %d: SIGCONT %s (%s holds %s at version %d, %d acks)", pause+1, held, other, model, modelVersion(t, js, model), l.acks.Load())
		nodes[held].signal(syscall.SIGCONT)

		// Let the resumed node act on what it believed while rows keep
		// coming and the new holder keeps publishing.
		resumed := modelVersion(t, js, model)
		waitAcks(t, l, l.acks.Load()+200, "after a pause")
		require.Eventually(t, func() bool { return modelVersion(t, js, model) >= resumed+2 }, time.Minute, 10*time.Millisecond,
			"no 2 versions after %s resumed", held)
	}
	stop.Store(true)
	wait()
	requireAlive(t, c.nats.proc, front, nodes["n1"], nodes["n2"])
	checkExactlyOnce(t, js, c, c.store, l)
	seen, problems := watcher.finish()
	t.Logf("%d versions watched", seen)
	assert.Empty(t, problems, "versions readers could use that did not match their manifest or changed after publication")
}
