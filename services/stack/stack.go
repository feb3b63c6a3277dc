// Package stack assembles teatree's services in one process, the same way
// whether they run all together (`teatree up`, with an embedded NATS
// server) or a few at a time against a NATS cluster (`teatree serve`).
package stack

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/leader"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/tlsconf"
	"github.com/teatree-dev/teatree/services/dispatcher"
	"github.com/teatree-dev/teatree/services/gateway"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
	"github.com/teatree-dev/teatree/services/node/query"
	"github.com/teatree-dev/teatree/services/notifier"
)

// The services a process can run.
const (
	Gateway    = "gateway"
	Dispatcher = "dispatcher"
	Notifier   = "notifier"
	Node       = "node"
)

// AllServices is what `teatree up` runs.
var AllServices = []string{Gateway, Dispatcher, Notifier, Node}

// Config configures one process.
type Config struct {
	Services []string
	// NATSURL is a comma-separated list of seed URLs of a NATS server or
	// cluster (see natsboot.SeedURLs); empty starts an embedded server.
	NATSURL string
	// NATS are the credentials of the connection to an external NATS
	// server (--nats-user, --nats-password, --nats-nkey-seed).
	NATS     natsboot.Credentials
	Embedded natsboot.ServerConfig
	// Auth is the access policy (--auth); nil lets everyone do
	// everything. The gateway decides HTTP requests with it; with an
	// embedded server it becomes the server's users and their subject
	// permissions (see natsAccess).
	Auth *auth.Holder
	Boot natsboot.Config
	// Data holds the node's model files; Blobs names the snapshot store,
	// a directory or s3://BUCKET/PREFIX?... (blob.OpenStore; default
	// Data/blobs).
	Data     string
	Blobs    string
	HTTPAddr string
	// TLS, when set, makes the gateway serve HTTPS only, with its
	// certificate (tlsconf.Load or tlsconf.Auto). The embedded server's
	// TLS is Embedded.TLS.
	TLS *tls.Config
	// MaxBody is the largest HTTP body the gateway accepts.
	MaxBody int64
	Node    node.Config
	Manager dbmanager.Config
	// Query configures the query executor every node runs.
	Query query.Config
	// Webhooks configures the notifier's webhook delivery.
	Webhooks notifier.WebhookConfig
	Log      *slog.Logger
	// OnReady is called once every service is ready.
	OnReady func(Ready)
}

// Ready says where a ready process can be reached.
type Ready struct {
	HTTPURL string
	NATSURL string
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if len(c.Services) == 0 {
		errs = append(errs, errors.New("no service to run: name gateway, dispatcher, notifier or node"))
	}
	for _, s := range c.Services {
		if !slices.Contains(AllServices, s) {
			errs = append(errs, fmt.Errorf("unknown service %q: want gateway, dispatcher, notifier or node", s))
		}
	}
	if c.Data == "" {
		errs = append(errs, errors.New("a data directory is needed (--data)"))
	}
	if c.NATSURL != "" {
		if _, err := natsboot.SeedURLs(c.NATSURL); err != nil {
			errs = append(errs, err)
		}
	}
	if err := c.NATS.Validate(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (c Config) runs(s string) bool { return slices.Contains(c.Services, s) }

// Run runs the configured services until ctx ends or one fails.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	cfg.Boot = cfg.Boot.WithDefaults()
	log := cfg.Log
	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	unlock, err := lockDir(cfg.Data)
	if err != nil {
		return err
	}
	defer unlock()
	// Before NATS, so a bad --blobs fails at once; it makes no request.
	blobSpec := cfg.Blobs
	if blobSpec == "" {
		blobSpec = filepath.Join(cfg.Data, "blobs")
	}
	blobs, err := blob.OpenStore(ctx, blobSpec)
	if err != nil {
		return fmt.Errorf("open blob store: %w", err)
	}

	natsURL, creds := cfg.NATSURL, cfg.NATS
	var srv *server.Server
	var access *natsAccess
	if natsURL == "" {
		if cfg.Embedded.StoreDir == "" {
			cfg.Embedded.StoreDir = filepath.Join(cfg.Data, "nats")
		}
		if cfg.Auth != nil {
			if access, err = startSecured(cfg.Embedded, cfg.Auth, cfg.Boot.Names, log.With("service", "nats")); err != nil {
				return err
			}
			srv, creds = access.srv.Server, access.credentials()
		} else if srv, err = natsboot.StartServer(cfg.Embedded); err != nil {
			return err
		}
		if cfg.Embedded.TLS != nil {
			// The services here dial the address the server listens on,
			// which its certificate need not name: they trust it by itself.
			creds.TLS = tlsconf.Pinned(cfg.Embedded.TLS)
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		natsURL = srv.ClientURL()
	}
	nc, err := connect(natsURL, creds, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	// A cluster started with this process may still be electing leaders:
	// wait for it, however long, rather than exit.
	names := cfg.Boot.Names
	var kv *buckets
	err = natsboot.Retry(ctx, log, "set up streams and buckets", func(ctx context.Context) error {
		if err := natsboot.Setup(ctx, js, cfg.Boot); err != nil {
			return err
		}
		var err error
		kv, err = openBuckets(ctx, js, names)
		return err
	})
	if err != nil && ctx.Err() != nil {
		log.Info("stopped while waiting for NATS", "err", err)
		return nil
	}
	if err != nil {
		return err
	}

	// A node runs a query executor too, which reports ready on its own.
	waitFor := len(cfg.Services)
	if cfg.runs(Node) {
		waitFor++
	}
	readiness := newReadiness(waitFor)
	g, gctx := errgroup.WithContext(ctx)
	if access != nil {
		follow, err := access.watch(gctx, kv.models, kv.functions)
		if err != nil {
			return err
		}
		g.Go(follow)
	}
	var httpURL string
	if cfg.runs(Gateway) {
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", cfg.HTTPAddr, err)
		}
		httpURL = "http://" + ln.Addr().String()
		if cfg.TLS != nil {
			ln, httpURL = tls.NewListener(ln, cfg.TLS), "https://"+ln.Addr().String()
		}
		gw, err := gateway.New(gateway.Config{Addr: cfg.HTTPAddr, Names: names, MaxBody: cfg.MaxBody, Auth: cfg.Auth}, gateway.Deps{
			NC: nc, JS: js, Models: kv.models, Owners: kv.owners, Pins: kv.pins, Functions: kv.functions, Blobs: blobs, Log: log.With("service", Gateway),
			Calls: kv.calls, Compute: kv.compute,
			Ready: readiness.err,
		})
		if err != nil {
			ln.Close()
			return err
		}
		g.Go(func() error { return gw.Run(gctx, ln) })
		readiness.done()
	}
	// One dispatcher and one notifier work at a time, however many
	// processes run them: each campaigns for its role, and a new term
	// starts a fresh service that resumes from its durable consumer.
	candidate := func(role string, ready func()) leader.Candidate {
		return leader.Candidate{KV: kv.leaders, Role: role, ID: candidateID(cfg.Data), Log: log.With("service", role), Standby: ready}
	}
	if cfg.runs(Notifier) {
		// Stored results are served by every replica, leading or not.
		store := results.New(kv.results)
		svc, err := notifier.ServeResults(gctx, nc, names, store)
		if err != nil {
			return err
		}
		defer svc.Stop()
		ready := sync.OnceFunc(readiness.done)
		g.Go(func() error {
			return candidate(Notifier, ready).Run(gctx, func(ctx context.Context, term uint64) error {
				n := notifier.New(notifier.Config{Names: names, Webhooks: cfg.Webhooks}, notifier.Deps{
					JS: js, Results: store, Models: kv.models, Deliveries: kv.deliveries, Calls: kv.calls, Blobs: blobs,
					Log: log.With("service", Notifier, "term", term),
				})
				return n.Run(ctx, ready)
			})
		})
	}
	if cfg.runs(Dispatcher) {
		// Both stores hand out URLs; a store that did not would fail here.
		urls, ok := blobs.(dispatcher.Blobs)
		if !ok {
			return fmt.Errorf("blob store %s cannot hand workers URLs", blobSpec)
		}
		ready := sync.OnceFunc(readiness.done)
		g.Go(func() error {
			return candidate(Dispatcher, ready).Run(gctx, func(ctx context.Context, term uint64) error {
				d := dispatcher.New(dispatcher.Config{Names: names, LeaseTTL: cfg.Boot.LeaseTTL, WorkerTTL: cfg.Boot.WorkerTTL},
					dispatcher.Deps{JS: js, Models: kv.models, Owners: kv.owners, Workers: kv.workers,
						Functions: kv.functions, Compute: kv.compute, Blobs: urls, Log: log.With("service", Dispatcher, "term", term)})
				return d.Run(ctx, ready)
			})
		})
	}
	if cfg.runs(Node) {
		nodeCfg := cfg.Node
		nodeCfg.Names, nodeCfg.LeaseTTL, nodeCfg.WorkerTTL, nodeCfg.Manager = names, cfg.Boot.LeaseTTL, cfg.Boot.WorkerTTL, cfg.Manager
		if nodeCfg.Dir == "" {
			nodeCfg.Dir = filepath.Join(cfg.Data, "models")
		}
		n, err := node.New(nodeCfg, node.Deps{JS: js, Models: kv.models, Owners: kv.owners, Workers: kv.workers, Pins: kv.pins, Functions: kv.functions, Blobs: blobs, Log: log.With("service", Node)})
		if err != nil {
			return err
		}
		g.Go(func() error { return n.Run(gctx, readiness.done) })
		qcfg := cfg.Query
		qcfg.Names = names
		if qcfg.CacheDir == "" {
			qcfg.CacheDir = filepath.Join(cfg.Data, "cache")
		}
		ex := query.New(qcfg, query.Deps{NC: nc, JS: js, Models: kv.models, Pins: kv.pins, Results: results.New(kv.results), Blobs: blobs, Log: log.With("service", "query")})
		g.Go(func() error { return ex.Run(gctx, readiness.done) })
	}
	g.Go(func() error {
		select {
		case <-readiness.all:
			if cfg.OnReady != nil {
				cfg.OnReady(Ready{HTTPURL: httpURL, NATSURL: natsURL})
			}
		case <-gctx.Done():
		}
		return nil
	})
	err = g.Wait()
	if ctx.Err() != nil && err == nil {
		log.Info("stopped")
	}
	return err
}

// connect connects to any of the comma-separated seed URLs, and keeps
// trying, there and at the servers they tell of, for as long as the process
// runs: a service may start before the NATS servers.
func connect(urls string, creds natsboot.Credentials, log *slog.Logger) (*nats.Conn, error) {
	opts, err := creds.Options()
	if err != nil {
		return nil, err
	}
	nc, err := nats.Connect(urls, append(opts, nats.Name("teatree"),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond),
		nats.ConnectHandler(func(nc *nats.Conn) { log.Info("connected to nats", "server", nc.ConnectedUrlRedacted()) }),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			if !nc.IsClosed() {
				log.Warn("disconnected from nats; reconnecting", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("reconnected to nats", "server", nc.ConnectedUrlRedacted()) }))...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", urls, err)
	}
	if !nc.IsConnected() {
		log.Warn("no nats server reachable yet; waiting for one", "seeds", urls)
	}
	return nc, nil
}

// buckets are the KV buckets of the control state.
type buckets struct {
	models, owners, workers, results, deliveries, pins, leaders jetstream.KeyValue
	// functions, calls and compute are the definitions of functions, the
	// records of compute calls and the compute workers' heartbeats.
	functions, calls, compute jetstream.KeyValue
}

func openBuckets(ctx context.Context, js jetstream.JetStream, names subject.Names) (*buckets, error) {
	b := &buckets{}
	for _, o := range []struct {
		kv   *jetstream.KeyValue
		name string
	}{
		{&b.models, names.ModelsBucket()}, {&b.owners, names.OwnersBucket()}, {&b.workers, names.WorkersBucket()},
		{&b.results, names.ResultsBucket()}, {&b.deliveries, names.DeliveriesBucket()}, {&b.pins, names.PinsBucket()},
		{&b.leaders, names.LeadersBucket()}, {&b.functions, names.FunctionsBucket()}, {&b.calls, names.CallsBucket()},
		{&b.compute, names.ComputeBucket()},
	} {
		kv, err := js.KeyValue(ctx, o.name)
		if err != nil {
			return nil, fmt.Errorf("open bucket %s: %w", o.name, err)
		}
		*o.kv = kv
	}
	return b, nil
}

// readiness counts services that have reported ready.
type readiness struct {
	mu   sync.Mutex
	left int
	all  chan struct{}
}

func newReadiness(n int) *readiness { return &readiness{left: n, all: make(chan struct{})} }

func (r *readiness) done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left > 0 {
		r.left--
		if r.left == 0 {
			close(r.all)
		}
	}
}

func (r *readiness) err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.left > 0 {
		return fmt.Errorf("%d services not ready yet", r.left)
	}
	return nil
}

// candidateID names this process in elections: its host and data
// directory, which lockDir keeps to one live process. So the id is unique
// among live candidates, and a process restarted on the same directory
// takes back at once a role its predecessor held.
func candidateID(data string) string {
	host, err := os.Hostname()
	if err != nil {
		host = "localhost"
	}
	if abs, err := filepath.Abs(data); err == nil {
		data = abs
	}
	return host + ":" + data
}

// lockDir keeps a second process from using the same data directory: a
// node resumes the leases of its id, which only one process may hold.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("data dir %s is in use by another teatree process (flock: %v)", dir, err)
	}
	return func() { f.Close() }, nil
}
