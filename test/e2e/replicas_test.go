package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// logged counts the lines of p's log with message msg (a prefix of it)
// logged by service.
func logged(p *proc, msg, service string) int {
	n := 0
	for _, line := range strings.Split(p.logs.String(), "\n") {
		if (strings.Contains(line, "msg="+msg) || strings.Contains(line, `msg="`+msg)) && strings.Contains(line, "service="+service+" ") {
			n++
		}
	}
	return n
}

// waitLogged waits until p has logged msg for every role at least n times.
func waitLogged(t *testing.T, p *proc, msg string, n int) {
	t.Helper()
	for _, role := range []string{"dispatcher", "notifier"} {
		require.Eventually(t, func() bool { return logged(p, msg, role) >= n }, time.Minute, 20*time.Millisecond,
			"%s: no %q of the %s (%d times); logs:\n%s", p.name, msg, role, n, p.logs)
	}
}

// freshModel creates a model and applies one request to it: the leading
// dispatcher must place it, the leading notifier notify it.
func freshModel(t *testing.T, c *cluster, js jetstream.JetStream, model string) {
	t.Helper()
	createModel(t, c, fmt.Sprintf(`{"id":%q}`, model))
	publish(t, js, "tt.mut."+model+".sql", model+".create", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"sql":"create table t (x int)"}`))
	st, _ := waitNotification(t, js, model, "create")
	require.Equal(t, "applied", st.Status, "%+v", st)
}

// catchUp waits until every request acknowledged so far has a
// notification, and says how long after since that was: how long the
// leader's stop stalled what it held (printed; nothing asserts on time).
func catchUp(t *testing.T, js jetstream.JetStream, l *ledger, what string, since time.Time) {
	t.Helper()
	ntf, err := js.Stream(context.Background(), "TT_NTF")
	require.NoError(t, err)
	rows, _ := l.snapshot()
	missing := len(rows)
	require.Eventually(t, func() bool {
		info, err := ntf.Info(context.Background(), jetstream.WithSubjectFilter("tt.ntf."+l.model+".req.*"))
		if err != nil {
			return false
		}
		missing = 0
		for id := range rows {
			if info.State.Subjects["tt.ntf."+l.model+".req."+id] == 0 {
				missing++
			}
		}
		if os.Getenv("E2E_TRACE") != "" {
			t.Logf("%s: %d missing at %s", what, missing, time.Since(since))
		}
		return missing == 0
	}, 2*time.Minute, 100*time.Millisecond, "%s: %d requests acknowledged before have no notification", what, missing)
	t.Logf("%s: the %d requests acknowledged before were all notified %s after it", what, len(rows), time.Since(since))
}

// TestReplicasOfDispatcherAndNotifier runs two `teatree serve dispatcher
// notifier` processes beside a gateway and a node. It pauses the leader
// (SIGSTOP) under load: the other takes both roles over, and when the
// paused one resumes it stands down. Then it kills the new leader with
// kill -9: the first leads again. Throughout, requests are applied and
// notified, models are placed, and in the end every acknowledged request
// has exactly one terminal notification.
func TestReplicasOfDispatcherAndNotifier(t *testing.T) {
	t.Parallel()
	const model = "replicas"
	c := newCluster(t)
	front := c.serve("gateway", []string{"gateway"})
	a := c.serve("replica a", []string{"dispatcher", "notifier"})
	b := c.serve("replica b", []string{"dispatcher", "notifier"})
	node := c.node("n1")
	// a was ready, so leading, before b started.
	waitLogged(t, a, "leading", 1)
	waitLogged(t, b, "standing by", 1)

	createModel(t, c, `{"id":"replicas"}`)
	_, js := connectNATS(t, c.nats.url())
	l := newLedger(model)
	var stop atomic.Bool
	// A steady trickle a loaded machine keeps up with, so that what a
	// stop stalls shows.
	gate := func() bool { time.Sleep(25 * time.Millisecond); return !stop.Load() }
	wait := l.publishers(t, 2, natsSender(js, model), gate, time.Now().Add(3*time.Minute))
	waitAcks(t, l, 100, "before the pause")

	t.Logf("SIGSTOP the leader, replica a (%d acks)", l.acks.Load())
	a.signal(syscall.SIGSTOP)
	paused := time.Now()
	waitLogged(t, b, "leading", 1)
	t.Logf("replica b leads %s after the pause", time.Since(paused))
	catchUp(t, js, l, "SIGSTOP", paused)
	freshModel(t, c, js, "fresh1")
	waitAcks(t, l, l.acks.Load()+100, "while the leader is paused")

	t.Logf("SIGCONT replica a (%d acks)", l.acks.Load())
	a.signal(syscall.SIGCONT)
	waitLogged(t, a, "standing down", 1)
	waitLogged(t, a, "standing by", 1)
	waitAcks(t, l, l.acks.Load()+100, "after the paused leader resumed")

	t.Logf("kill -9 the leader, replica b (%d acks)", l.acks.Load())
	b.kill()
	killed := time.Now()
	waitLogged(t, a, "leading", 2)
	t.Logf("replica a leads %s after the kill", time.Since(killed))
	catchUp(t, js, l, "kill -9", killed)
	freshModel(t, c, js, "fresh2")
	waitAcks(t, l, l.acks.Load()+100, "after the leader was killed")

	stop.Store(true)
	wait()
	requireAlive(t, c.nats.proc, front, a, node)
	checkExactlyOnce(t, js, c, c.store, l)
}
