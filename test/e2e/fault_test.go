package e2e

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestFaultKill9EachService runs gateway, dispatcher, notifier and a node
// as separate processes against a standalone nats-server and, under load
// from NATS and HTTP clients that retry until acknowledged, kill -9s each
// of the five twice in a fixed order, restarting it on the same address
// and data. Some HTTP bodies are big enough to go through the blob store,
// and every third NATS request is a call of a SQL function. Afterwards the same exactly-once checks as after a fencing run.
func TestFaultKill9EachService(t *testing.T) {
	t.Parallel()
	const model = "fault"
	const fresh = 150 // acknowledgements between two kills
	c := newCluster(t)
	gateway := c.serve("gateway", []string{"gateway"})
	dispatcher := c.serve("dispatcher", []string{"dispatcher"})
	notifier := c.serve("notifier", []string{"notifier"})
	node := c.node("n1")
	all := []*proc{c.nats.proc, gateway, dispatcher, notifier, node}
	createModel(t, c, `{"id":"fault","snapshot":{"interval_ms":200}}`)
	_, js := connectNATS(t, c.nats.url())

	// Publishers send while the number of acknowledgements is below the
	// budget; each kill lands halfway through a budget, while requests
	// flow, and the total stays bounded.
	l := newLedger(model)
	addNumberFunction(t, c, js, l)
	var budget atomic.Int64
	var stop atomic.Bool
	gate := func() bool {
		for l.acks.Load() >= budget.Load() && !stop.Load() && !l.abort.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		return !stop.Load()
	}
	deadline := time.Now().Add(3 * time.Minute)
	budget.Store(fresh)
	waitNATS := l.publishers(t, 3, callSender(js, model, natsSender(js, model)), gate, deadline)
	waitHTTP := l.publishers(t, 1, httpSender(c.url, model, 10), gate, deadline)

	for round := range 2 {
		for _, p := range all {
			base := l.acks.Load()
			budget.Store(base + fresh)
			waitAcks(t, l, base+fresh/2, "before kill -9 of "+p.name)
			t.Logf("round %d: kill -9 %s at %d acks", round+1, p.name, l.acks.Load())
			p.kill()
			p.start()
			requireAlive(t, all...)
		}
	}
	base := l.acks.Load()
	budget.Store(base + fresh)
	waitAcks(t, l, base+fresh, "after the last restart")
	stop.Store(true)
	waitNATS()
	waitHTTP()
	requireAlive(t, all...)
	checkExactlyOnce(t, js, c, c.store, l)
}
