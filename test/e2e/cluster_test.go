package e2e

import (
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/teatree-dev/teatree/internal/loopback"
)

// cluster is a set of separately running `teatree serve` processes against
// one standalone nats-server, sharing one blob store, as in a deployment.
type cluster struct {
	t        *testing.T
	nats     *natsServer
	blobs    string
	httpAddr string // of the process that runs the gateway
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	return &cluster{t: t, nats: startNATS(t), blobs: t.TempDir()}
}

// serve starts `teatree serve SERVICES...` with a data directory of its
// own and waits until it is ready. A process running the gateway listens
// on a loopback address of its own.
func (c *cluster) serve(name string, services []string, extra ...string) *proc {
	c.t.Helper()
	args := append(slices.Clone(services), "--nats", c.nats.url(), "--blobs", c.blobs, "--data", c.t.TempDir(), "--lease-ttl", "3s")
	httpURL := ""
	if slices.Contains(services, "gateway") {
		c.httpAddr = net.JoinHostPort(loopback.IP(c.t), portHTTP)
		httpURL = "http://" + c.httpAddr
		args = append(args, "--http", c.httpAddr)
	}
	p := newProc(c.t, name, binary, append(append([]string{"serve"}, args...), extra...), readyTeatree("teatree serving", httpURL))
	p.start()
	return p
}

// node starts `teatree serve node` with the given node id.
func (c *cluster) node(id string) *proc {
	c.t.Helper()
	return c.serve("node "+id, []string{"node"}, "--node-id", id)
}

func (c *cluster) url(path string) string { return "http://" + c.httpAddr + path }

// requireAlive fails the test when a process died on its own.
func requireAlive(t *testing.T, procs ...*proc) {
	t.Helper()
	var dead []string
	for _, p := range procs {
		if !p.alive() {
			dead = append(dead, p.name)
		}
	}
	if len(dead) > 0 {
		t.Fatalf("processes exited on their own: %s", strings.Join(dead, ", "))
	}
}
