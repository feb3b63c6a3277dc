package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
)

// natsCluster is n nats-server processes routed to each other, each on a
// loopback address of its own, with JetStream fsyncing every message.
type natsCluster struct {
	servers []*natsServer
}

// startNATSCluster starts n nats-servers and returns once each accepts
// connections; JetStream may still be electing its leaders. Every server
// lists every route, its own among them, as a production cluster's
// configuration does.
func startNATSCluster(t *testing.T, n int) *natsCluster {
	t.Helper()
	bin := natsServerBinary(t)
	ips := make([]string, n)
	routes := make([]string, n)
	for i := range ips {
		ips[i] = loopback.IP(t)
		routes[i] = fmt.Sprintf("%q", "nats-route://"+net.JoinHostPort(ips[i], portRoute))
	}
	c := &natsCluster{}
	for i, ip := range ips {
		dir := t.TempDir()
		s := &natsServer{addr: net.JoinHostPort(ip, portNATS)}
		conf := filepath.Join(dir, "nats.conf")
		require.NoError(t, os.WriteFile(conf, fmt.Appendf(nil, `server_name: e2e-%d
listen: %q
max_payload: 8MB
cluster {
  name: e2e
  listen: %q
  routes: [%s]
}
jetstream {
  store_dir: %q
  sync_interval: always
  limits { default_max_consumers: -1 }
}
`, i, s.addr, net.JoinHostPort(ip, portRoute), strings.Join(routes, ", "), filepath.Join(dir, "store")), 0o644))
		s.proc = newProc(t, fmt.Sprintf("nats-server %d", i), bin, []string{"-c", conf}, func(p *proc) bool {
			return strings.Count(p.logs.String(), "Server is ready") >= p.starts
		})
		c.servers = append(c.servers, s)
	}
	for _, s := range c.servers {
		s.start()
	}
	return c
}

// urls is the seed list of `teatree serve --nats`.
func (c *natsCluster) urls() string {
	urls := make([]string, len(c.servers))
	for i, s := range c.servers {
		urls[i] = s.url()
	}
	return strings.Join(urls, ",")
}

// Three `teatree serve` processes start at the same moment as a fresh
// three-server cluster elects its leaders, with every stream and bucket
// on three replicas: all come up, and mutations are applied before, while
// and after one nats-server is killed with SIGKILL and restarted.
func TestServeAgainstAFreshNATSCluster(t *testing.T) {
	t.Parallel()
	nc := startNATSCluster(t, 3)
	blobs := t.TempDir()
	httpAddr := net.JoinHostPort(loopback.IP(t), portHTTP)
	common := []string{"--nats", nc.urls(), "--replicas", "3", "--blobs", blobs, "--lease-ttl", "3s"}
	launch := []struct {
		name string
		args []string
		http string
	}{
		{"front", []string{"gateway", "dispatcher", "--http", httpAddr}, "http://" + httpAddr},
		{"notifier", []string{"notifier"}, ""},
		{"node", []string{"node", "--node-id", "node-1"}, ""},
	}
	// Each start returns as soon as its process runs (ready at once), so
	// the three start together; then all must become ready.
	procs := make([]*proc, len(launch))
	ready := make([]func(*proc) bool, len(launch))
	for i, l := range launch {
		args := append(append([]string{"serve"}, l.args...), append(common, "--data", t.TempDir())...)
		procs[i] = newProc(t, l.name, binary, args, func(*proc) bool { return true })
		ready[i] = readyTeatree("teatree serving", l.http)
	}
	for _, p := range procs {
		p.start()
	}
	// A process that exits, as each did when setup gave up after one try,
	// fails the test at once.
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		requireAlive(t, procs...)
		all := true
		for i, p := range procs {
			all = all && ready[i](p)
		}
		if all {
			break
		}
		require.True(t, time.Now().Before(deadline), "the three services did not come up against the fresh cluster within 3 minutes")
	}
	requireAlive(t, procs...)

	gw := gatewayURL("http://" + httpAddr)
	createModel(t, gw, `{"id":"clustered"}`)
	_, js := connectNATS(t, nc.urls())
	s, err := js.Stream(context.Background(), "TT_MUT")
	require.NoError(t, err)
	require.Equal(t, 3, s.CachedInfo().Config.Replicas, "TT_MUT on three replicas")

	applied := func(id, rows string) {
		t.Helper()
		publishUntilAcked(t, js, "tt.mut.clustered.append", id, map[string]string{"Tt-Table": "t", "Content-Type": "text/csv"}, []byte("x\n"+rows+"\n"))
		st := waitNotificationThroughFailover(t, js, "clustered", id)
		require.Equal(t, "applied", st.Status, "%+v", st)
	}
	applied("before", "1")

	killed := nc.servers[0]
	killed.kill()
	applied("without-one", "2")
	killed.start()
	applied("after-restart", "3")
	requireAlive(t, procs...)
}

// waitNotificationThroughFailover reads the terminal notification of a
// request from TT_NTF, as waitNotification does, asking again when a
// look-up fails while the stream elects a new leader.
func waitNotificationThroughFailover(t *testing.T, js jetstream.JetStream, model, id string) status {
	t.Helper()
	var data []byte
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		stream, err := js.Stream(ctx, "TT_NTF")
		if err != nil {
			return false
		}
		msg, err := stream.GetLastMsgForSubject(ctx, "tt.ntf."+model+".req."+id)
		if err != nil {
			return false
		}
		data = msg.Data
		return true
	}, 90*time.Second, 50*time.Millisecond, "no notification for %s/%s", model, id)
	var st status
	require.NoError(t, json.Unmarshal(data, &st), string(data))
	return st
}

type gatewayURL string

func (g gatewayURL) url(path string) string { return string(g) + path }

// publishUntilAcked publishes a mutation with a message id until JetStream
// acknowledges it: while a stream elects a new leader a publish can time
// out, and the id keeps a retry whose first try was stored from being
// stored twice.
func publishUntilAcked(t *testing.T, js jetstream.JetStream, subj, id string, headers map[string]string, body []byte) {
	t.Helper()
	var err error
	for range 60 {
		msg := nats.NewMsg(subj)
		msg.Data = body
		msg.Header.Set("Nats-Msg-Id", id)
		for k, v := range headers {
			msg.Header.Set(k, v)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = js.PublishMsg(ctx, msg)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(t, err, "publish %s", id)
}
