package natstest

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
)

// Cluster is n embedded JetStream servers in this process, routed to each
// other on 127.0.0.1 and ports of their own choosing, each with its own
// store, fsyncing every write.
type Cluster struct {
	t    testing.TB
	name string

	// anchor stands in for the route of a server that starts while no
	// other runs (see start).
	anchor string

	mu      sync.Mutex
	servers []*server.Server // nil while shut down
	dirs    []string
}

// NewCluster starts a cluster of n servers for t, waits until JetStream
// has a meta leader that sees all n, and sets up teatree's streams and
// buckets with 3 replicas (n when n is less). The servers stop in
// t.Cleanup.
func NewCluster(t testing.TB, n int) (*Cluster, jetstream.JetStream) {
	t.Helper()
	c := StartCluster(t, n)
	c.WaitMetaLeader()
	js := c.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, natsboot.Setup(ctx, js, natsboot.Config{Replicas: min(n, 3)}))
	return c, js
}

// StartCluster starts n servers and returns as soon as each accepts
// connections, with JetStream still electing its meta leader: the first,
// then the others all at once.
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := NewStoppedCluster(t, n)
	c.Start(0)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 1; i < n; i++ {
		wg.Go(func() { errs[i] = c.start(i) })
	}
	wg.Wait()
	for i := 1; i < n; i++ {
		require.NoError(t, errs[i], "start server %d of the cluster", i)
	}
	return c
}

// NewStoppedCluster plans a cluster of n servers, none running yet: Start
// each.
func NewStoppedCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	require.Positive(t, n)
	c := &Cluster{t: t, name: "tt-test", servers: make([]*server.Server, n), dirs: make([]string, n)}
	c.anchor = "nats-route://" + HangUp(t)
	for i := range n {
		c.dirs[i] = filepath.Join(t.TempDir(), "store")
	}
	// After the stores' cleanup is registered, so that it runs before it:
	// a running server still writes there.
	t.Cleanup(c.shutdownAll)
	return c
}

// Start starts server i, with its name and store, routed to the running
// servers (the first server alone has none; the others tell each other of
// the rest). Its client and route ports are of its own choosing, new at
// each start: clients learn of them from the other servers.
func (c *Cluster) Start(i int) {
	c.t.Helper()
	require.NoError(c.t, c.start(i), "start server %d of the cluster", i)
}

func (c *Cluster) start(i int) error {
	c.mu.Lock()
	var routes []string
	for j, s := range c.servers {
		if j != i && s != nil {
			routes = append(routes, "nats-route://"+s.ClusterAddr().String())
		}
	}
	c.mu.Unlock()
	if len(routes) == 0 {
		// A clustered JetStream server refuses to start without a route,
		// and the others' addresses are not known until they start. A
		// listener of this cluster's own, held open and hanging up on
		// every connection, is that route: nothing else can be there.
		routes = []string{c.anchor}
	}
	s, err := natsboot.StartServer(natsboot.ServerConfig{
		Name:       fmt.Sprintf("%s-%d", c.name, i),
		Addr:       "127.0.0.1:0",
		StoreDir:   c.dirs[i],
		SyncAlways: true,
		Cluster:    natsboot.ClusterConfig{Name: c.name, Addr: "127.0.0.1:0", Routes: routes},
	})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.servers[i] != nil {
		s.Shutdown()
		return fmt.Errorf("server %d of the cluster is running already", i)
	}
	c.servers[i] = s
	return nil
}

// Server returns server i, nil while it is shut down.
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// URLs is the comma-separated client URLs of the running servers, as
// `teatree serve --nats` takes them.
func (c *Cluster) URLs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var urls []string
	for _, s := range c.servers {
		if s != nil {
			urls = append(urls, s.ClientURL())
		}
	}
	return strings.Join(urls, ",")
}

// Connect connects to the running servers, reconnecting forever, closed
// in t.Cleanup, and returns a JetStream handle.
func (c *Cluster) Connect() jetstream.JetStream {
	c.t.Helper()
	nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	require.NoError(c.t, err)
	c.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	return js
}

// Shutdown stops server i and waits until it is gone; its store stays.
func (c *Cluster) Shutdown(i int) {
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s != nil {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

// WaitMetaLeader waits until a running server leads JetStream's meta group
// and sees every running server as a peer.
func (c *Cluster) WaitMetaLeader() {
	c.t.Helper()
	require.Eventually(c.t, func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		running := 0
		var leader *server.Server
		for _, s := range c.servers {
			if s != nil {
				running++
				if s.JetStreamIsLeader() {
					leader = s
				}
			}
		}
		return leader != nil && len(leader.JetStreamClusterPeers()) == running
	}, time.Minute, 20*time.Millisecond, "no JetStream meta leader seeing every server")
}

func (c *Cluster) shutdownAll() {
	for i := range c.dirs {
		c.Shutdown(i)
	}
}

// HangUp is natsboot.HangUp for a test: closed when the test ends; it
// returns the address.
func HangUp(t testing.TB) string {
	t.Helper()
	ln, err := natsboot.HangUp()
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}
