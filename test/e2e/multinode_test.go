package e2e

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMultiNodeFaults runs teatree the way a deployment does: a 3-server
// NATS cluster with every stream and bucket on three replicas, S3 for
// blobs, three nodes with data directories of their own, two gateways,
// two dispatchers and two notifiers, 20 models. Under load from NATS and
// HTTP clients that retry until acknowledged (some HTTP bodies big enough
// to go through S3), it kills with SIGKILL a node, a NATS server, the
// leading dispatcher and the leading notifier in turn, restarting each.
// The killed node's models must be serving again on the other nodes, and
// how long that took is printed beside twice the lease TTL; afterwards every
// acknowledged request is applied exactly once with exactly one terminal
// notification, and every kept version of every model holds exactly the
// acknowledged rows up to its applied_seq.
func TestMultiNodeFaults(t *testing.T) {
	t.Parallel()
	const models = 20
	const fresh = 400 // acknowledgements, over all models, between two faults
	nc := startNATSCluster(t, 3)
	c := newS3Cluster(t, nc)
	gateways := make([]gatewayURL, 2)
	var procs []*proc
	for i := range gateways {
		procs = append(procs, c.serve(fmt.Sprintf("gateway %d", i+1), []string{"gateway"}))
		gateways[i] = gatewayURL(c.url(""))
	}
	dispatchers := []*proc{c.serve("dispatcher 1", []string{"dispatcher"}), c.serve("dispatcher 2", []string{"dispatcher"})}
	notifiers := []*proc{c.serve("notifier 1", []string{"notifier"}), c.serve("notifier 2", []string{"notifier"})}
	nodes := map[string]*proc{}
	for _, id := range []string{"n1", "n2", "n3"} {
		nodes[id] = c.node(id)
		procs = append(procs, nodes[id])
	}
	procs = append(append(procs, dispatchers...), notifiers...)
	for _, s := range nc.servers {
		procs = append(procs, s.proc)
	}
	_, js := connectNATS(t, nc.urls())

	f := newFleet()
	deadline := time.Now().Add(4 * time.Minute)
	f.budget.Store(fresh)
	for i := range models {
		model := fmt.Sprintf("multi-%02d", i)
		gw := gateways[i%len(gateways)]
		createModel(t, gw, fmt.Sprintf(`{"id":%q,"snapshot":{"interval_ms":300}}`, model))
		l := f.add(model)
		f.waits = append(f.waits, l.publishers(t, 1, natsSender(js, model), f.gate(l), deadline))
		if i%4 == 0 {
			f.waits = append(f.waits, l.publishers(t, 1, httpSender(gw.url, model, 20), f.gate(l), deadline))
		}
	}

	// Every model is placed and applying before the first fault.
	f.waitFresh(t, fresh, "before the first fault")
	byNode := map[string][]string{}
	for _, l := range f.ledgers {
		o := owner(t, js, l.model)
		byNode[o] = append(byNode[o], l.model)
	}
	victim := ""
	for id := range nodes {
		if victim == "" || len(byNode[id]) > len(byNode[victim]) {
			victim = id
		}
	}
	require.NotEmpty(t, byNode[victim], "no node holds a model: %v", byNode)
	t.Logf("models by node: %v", byNode)

	t.Logf("kill -9 node %s, which holds %d models (%d acks)", victim, len(byNode[victim]), f.acks())
	nodes[victim].kill()
	killed := time.Now()
	took := f.probe(t, js, byNode[victim], killed)
	for _, m := range byNode[victim] {
		assert.NotEqual(t, victim, owner(t, js, m), "%s still held by the killed node", m)
	}
	p50, worst := spread(took)
	t.Logf("the %d models of the killed node serve again after %s (p50) and %s (max); lease ttl %s",
		len(took), p50.Round(time.Millisecond), worst.Round(time.Millisecond), c.leaseTTL)
	// Measured, not asserted: on a machine loaded with the other tests the
	// tail moves (make bench measures it on a quiet one).
	t.Logf("within 2× the lease ttl: %v (%v)", worst <= 2*c.leaseTTL, took)
	nodes[victim].start()
	f.waitFresh(t, fresh, "after the node came back")

	server := nc.servers[1]
	t.Logf("kill -9 %s (%d acks)", server.name, f.acks())
	server.kill()
	f.waitFresh(t, fresh, "with one nats-server down")
	server.start()
	f.waitFresh(t, fresh, "after the nats-server came back")

	for _, role := range []struct {
		name     string
		replicas []*proc
	}{{"dispatcher", dispatchers}, {"notifier", notifiers}} {
		lead := leaderOf(t, js, role.name, role.replicas)
		t.Logf("kill -9 the leading %s, %s (%d acks)", role.name, lead.name, f.acks())
		lead.kill()
		f.waitFresh(t, fresh, "after the leading "+role.name+" was killed")
		lead.start()
		f.waitFresh(t, fresh, "after the "+role.name+" came back")
	}

	f.stop.Store(true)
	for _, wait := range f.waits {
		wait()
	}
	requireAlive(t, procs...)
	for i, l := range f.ledgers {
		checkExactlyOnce(t, js, gateways[i%len(gateways)], c.store, l)
	}
}

// fleet is the load on many models: a ledger each, and one budget of
// acknowledgements over all of them that publishers stay within.
type fleet struct {
	ledgers []*ledger
	budget  atomic.Int64
	stop    atomic.Bool
	waits   []func()
}

func newFleet() *fleet { return &fleet{} }

func (f *fleet) add(model string) *ledger {
	l := newLedger(model)
	f.ledgers = append(f.ledgers, l)
	return l
}

func (f *fleet) acks() int64 {
	var n int64
	for _, l := range f.ledgers {
		n += l.acks.Load()
	}
	return n
}

// gate holds a publisher of l while the fleet is at its budget.
func (f *fleet) gate(l *ledger) func() bool {
	return func() bool {
		for f.acks() >= f.budget.Load() && !f.stop.Load() && !l.abort.Load() {
			time.Sleep(5 * time.Millisecond)
		}
		return !f.stop.Load()
	}
}

// waitFresh lets n more requests through and waits for them to be
// acknowledged.
func (f *fleet) waitFresh(t *testing.T, n int64, what string) {
	t.Helper()
	base := f.acks()
	f.budget.Store(base + n)
	require.Eventually(t, func() bool { return f.acks() >= base+n }, 2*time.Minute, 10*time.Millisecond,
		"%s: only %d of %d requests acknowledged", what, f.acks()-base, n)
}

// probe sends each model one request of its own (kept out of the checks)
// and returns, per model, how long after since it was applied and
// notified: how long the model took to serve again.
func (f *fleet) probe(t *testing.T, js jetstream.JetStream, models []string, since time.Time) map[string]time.Duration {
	t.Helper()
	var mu sync.Mutex
	took := map[string]time.Duration{}
	var wg sync.WaitGroup
	for _, m := range models {
		id := "probe-" + m
		for _, l := range f.ledgers {
			if l.model == m {
				l.setup[id] = true
			}
		}
		wg.Go(func() {
			publishUntilAcked(t, js, "tt.mut."+m+".append", id, map[string]string{"Tt-Table": "probes", "Content-Type": "application/x-ndjson"}, []byte(`{"p":1}`+"\n"))
			st := waitNotificationThroughFailover(t, js, m, id)
			mu.Lock()
			defer mu.Unlock()
			took[m] = time.Since(since)
			assert.Equal(t, "applied", st.Status, "probe of %s: %+v", m, st)
		})
	}
	wg.Wait()
	return took
}

func spread(took map[string]time.Duration) (p50, worst time.Duration) {
	d := make([]time.Duration, 0, len(took))
	for _, v := range took {
		d = append(d, v)
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[len(d)-1]
}

// leaderOf returns the replica that leads role: tt_leaders holds the
// leader's id, host:data directory.
func leaderOf(t *testing.T, js jetstream.JetStream, role string, replicas []*proc) *proc {
	t.Helper()
	var lead *proc
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, "tt_leaders")
		if err != nil {
			return false
		}
		e, err := kv.Get(ctx, role)
		if err != nil {
			return false
		}
		for _, p := range replicas {
			if i := slices.Index(p.args, "--data"); i >= 0 && strings.HasSuffix(string(e.Value()), ":"+p.args[i+1]) {
				lead = p
				return true
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "no replica leads %s", role)
	return lead
}
