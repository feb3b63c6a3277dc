package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/teatree-dev/teatree/internal/loopback"
	"github.com/teatree-dev/teatree/internal/s3server"
	"github.com/teatree-dev/teatree/pkg/natsboot"
)

// clusterEnv is what a cluster scenario runs on: a local cluster of three
// NATS servers in this process (streams and buckets with 3 replicas), a
// blob store (an S3 server, or a directory), and node processes, each
// `teatree serve node` spawned from this binary with its own --data, so
// that kill -9 kills a real process. The other services run in this
// process (stackOptions.cluster).
type clusterEnv struct {
	r        *runner
	name     string
	dir      string
	natsURL  string
	blobs    string
	replicas int
	leaseTTL time.Duration
	servers  []*server.Server
	anchor   net.Listener
	s3       *s3server.Process
	bucket   string
	mu       sync.Mutex
	nodes    []*nodeProc
}

type clusterOptions struct {
	// s3 keeps the blobs in an S3 server; else in a directory all the
	// nodes share.
	s3       bool
	leaseTTL time.Duration
}

const clusterServers = 3

// startCluster starts the NATS cluster and the blob store. stop ends them
// and every node process started on them.
func (r *runner) startCluster(ctx context.Context, name string, o clusterOptions) (_ *clusterEnv, err error) {
	c := &clusterEnv{r: r, name: name, dir: filepath.Join(r.opt.Work, slug(name)+"-cluster"), replicas: clusterServers, leaseTTL: o.leaseTTL}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	if err := c.startNATS(); err != nil {
		return nil, err
	}
	c.blobs = filepath.Join(c.dir, "blobs")
	if o.s3 {
		ip, err := loopback.Claim()
		if err != nil {
			return nil, err
		}
		logf, err := os.Create(filepath.Join(r.opt.Out, slug(name)+"-versitygw.log"))
		if err != nil {
			return nil, err
		}
		defer logf.Close()
		root := filepath.Join(c.dir, "s3")
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		if c.s3, err = s3server.Start(net.JoinHostPort(ip, loopback.PortS3), root, logf); err != nil {
			return nil, err
		}
		c.bucket = "teatree-bench"
		if err := c.s3.CreateBucket(ctx, c.bucket); err != nil {
			return nil, err
		}
		c.blobs = c.s3.URL(c.bucket, "")
		// The services of this process reach the server through the
		// standard AWS environment, as the node processes do.
		for _, kv := range s3server.Env() {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
	}
	return c, nil
}

// startNATS starts the servers routed to each other on 127.0.0.1 and ports
// of their own choosing: the first to a listener of ours that hangs up on
// every connection (a clustered JetStream server needs a route to start),
// the others to the first, which tells them of the rest.
func (c *clusterEnv) startNATS() error {
	ln, err := natsboot.HangUp()
	if err != nil {
		return err
	}
	c.anchor = ln
	route := "nats-route://" + ln.Addr().String()
	var urls []string
	for i := range clusterServers {
		s, err := natsboot.StartServer(natsboot.ServerConfig{
			Name: fmt.Sprintf("bench-%d", i), Addr: "127.0.0.1:0", SyncAlways: true,
			StoreDir: filepath.Join(c.dir, fmt.Sprintf("nats-%d", i)),
			Cluster:  natsboot.ClusterConfig{Name: "teatree-bench", Addr: "127.0.0.1:0", Routes: []string{route}},
		})
		if err != nil {
			return fmt.Errorf("start NATS server %d of the cluster: %w", i, err)
		}
		c.servers = append(c.servers, s)
		urls = append(urls, s.ClientURL())
		route = "nats-route://" + c.servers[0].ClusterAddr().String()
	}
	c.natsURL = strings.Join(urls, ",")
	return nil
}

// stop kills the node processes still running and stops the servers.
func (c *clusterEnv) stop() {
	c.mu.Lock()
	nodes := c.nodes
	c.mu.Unlock()
	for _, n := range nodes {
		n.kill()
	}
	if c.s3 != nil {
		c.s3.Kill()
	}
	for _, s := range c.servers {
		s.Shutdown()
		s.WaitForShutdown()
	}
	if c.anchor != nil {
		c.anchor.Close()
	}
	os.RemoveAll(c.dir)
}

// nodeProc is one `teatree serve node` process, restartable on the same
// arguments (the same --node-id and --data).
type nodeProc struct {
	id   string
	args []string
	env  []string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// readyLine is what `teatree serve` prints once its services are ready.
const readyLine = "teatree serving"

// startNode starts a node process and waits until it is ready.
func (c *clusterEnv) startNode(ctx context.Context, id string, slots int) (*nodeProc, error) {
	n := &nodeProc{id: id, log: filepath.Join(c.r.opt.Out, slug(c.name)+"-"+id+".log"),
		args: []string{"serve", "node", "--nats", c.natsURL, "--replicas", strconv.Itoa(c.replicas),
			"--data", filepath.Join(c.dir, id), "--node-id", id, "--blobs", c.blobs, "--slots", strconv.Itoa(slots),
			"--lease-ttl", c.leaseTTL.String()}}
	if c.s3 != nil {
		n.env = s3server.Env()
	}
	c.mu.Lock()
	c.nodes = append(c.nodes, n)
	c.mu.Unlock()
	return n, n.start(ctx)
}

// start runs the process, its output appended to its log, and waits for
// its ready line, for at most a minute.
func (n *nodeProc) start(ctx context.Context) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(n.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	pr, pw := io.Pipe()
	cmd := exec.Command(exe, n.args...)
	cmd.Env = append(os.Environ(), n.env...)
	cmd.Stdout, cmd.Stderr = pw, pw
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start node %s: %w", n.id, err)
	}
	n.cmd, n.done = cmd, make(chan struct{})
	ready := make(chan struct{})
	go func() {
		var once sync.Once
		sc := bufio.NewScanner(pr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if strings.Contains(sc.Text(), readyLine) {
				once.Do(func() { close(ready) })
			}
		}
		io.Copy(logf, pr)
		logf.Close()
	}()
	go func() {
		cmd.Wait()
		pw.Close()
		close(n.done)
	}()
	select {
	case <-ready:
		return nil
	case <-n.done:
		return fmt.Errorf("node %s exited before it was ready: see %s", n.id, n.log)
	case <-ctx.Done():
		n.kill()
		return ctx.Err()
	case <-time.After(time.Minute):
		n.kill()
		return fmt.Errorf("node %s not ready after a minute: see %s", n.id, n.log)
	}
}

// kill sends SIGKILL and waits until the process exited.
func (n *nodeProc) kill() {
	if n.cmd == nil {
		return
	}
	n.cmd.Process.Kill()
	<-n.done
}

// terminate stops the process as an operator would (SIGTERM: it gives up
// its leases), killing it after 30s.
func (n *nodeProc) terminate() error {
	if n.cmd == nil {
		return nil
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return nil
	case <-time.After(30 * time.Second):
		n.kill()
		return errors.New("node " + n.id + " did not stop within 30s of SIGTERM: killed")
	}
}
