package e2e

import (
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
	"github.com/teatree-dev/teatree/internal/s3test"
	"github.com/teatree-dev/teatree/pkg/blob"
)

// cluster is a set of separately running `teatree serve` processes, as in
// a deployment: against one standalone nats-server sharing one blob
// directory (newCluster), or against a NATS cluster with S3 for blobs and
// no disk shared between processes (newS3Cluster).
type cluster struct {
	t    *testing.T
	nats *natsServer // the standalone server; nil on a NATS cluster
	// natsURLs is what --nats gets; blobs what --blobs gets, a directory
	// or an s3:// URL, and store reads it; env is added to every process's
	// environment; common are flags every process gets.
	natsURLs string
	blobs    string
	store    blob.Store
	env      []string
	common   []string
	leaseTTL time.Duration
	httpAddr string // of the process that last started a gateway
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	dir := t.TempDir()
	store, err := blob.NewDir(dir)
	require.NoError(t, err)
	n := startNATS(t)
	return &cluster{t: t, nats: n, natsURLs: n.url(), blobs: dir, store: store, leaseTTL: 3 * time.Second}
}

// newS3Cluster runs against the NATS cluster nc, every stream and bucket on
// three replicas, with a real S3 server for blobs. Its lease TTL leaves
// the failover it bounds (twice the TTL) room for restoring from S3 on a
// machine loaded with the other tests.
func newS3Cluster(t *testing.T, nc *natsCluster) *cluster {
	t.Helper()
	srv := s3test.Start(t)
	return &cluster{t: t, natsURLs: nc.urls(), blobs: srv.URL("teatree"), store: srv.Store(t, "teatree"), env: srv.Env(),
		common: []string{"--replicas", "3"}, leaseTTL: 5 * time.Second}
}

// serve starts `teatree serve SERVICES...` with a data directory of its
// own and waits until it is ready. A process running the gateway listens
// on a loopback address of its own.
func (c *cluster) serve(name string, services []string, extra ...string) *proc {
	c.t.Helper()
	args := append(slices.Clone(services), "--nats", c.natsURLs, "--blobs", c.blobs, "--data", c.t.TempDir(), "--lease-ttl", c.leaseTTL.String())
	args = append(args, c.common...)
	httpURL := ""
	if slices.Contains(services, "gateway") {
		c.httpAddr = net.JoinHostPort(loopback.IP(c.t), portHTTP)
		httpURL = "http://" + c.httpAddr
		args = append(args, "--http", c.httpAddr)
	}
	p := newProc(c.t, name, binary, append(append([]string{"serve"}, args...), extra...), readyTeatree("teatree serving", httpURL))
	p.env = c.env
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
