// Package query runs read-only queries on snapshot versions. Every node
// runs an executor: it answers tt.query.<model> as a NATS micro service in
// a queue group, so any number of nodes share the load, and it never
// touches a model's read-write connection.
package query

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/reply"
	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Config configures an executor.
type Config struct {
	Names subject.Names
	// CacheDir holds the versions this node has opened.
	CacheDir string
	// Slots is how many queries run at once.
	Slots int
	// MemoryLimit, Threads and MaxTempSize bound each open version.
	MemoryLimit string
	Threads     int
	MaxTempSize string
	// Timeout is the default and the ceiling of a query's deadline.
	Timeout time.Duration
	// PageRows is the default page size; MaxPageBytes the most one page
	// may take (under the NATS max payload).
	PageRows     int64
	MaxPageBytes int
	// IdleClose closes a version no query has used for this long.
	IdleClose time.Duration
}

// WithDefaults fills zero fields.
func (c Config) WithDefaults() Config {
	if c.Slots <= 0 {
		c.Slots = 4
	}
	if c.MemoryLimit == "" {
		c.MemoryLimit = "1GB"
	}
	if c.Threads <= 0 {
		c.Threads = 2
	}
	if c.MaxTempSize == "" {
		c.MaxTempSize = "1GB"
	}
	if c.Timeout <= 0 {
		c.Timeout = 30 * time.Second
	}
	if c.PageRows <= 0 {
		c.PageRows = 10_000
	}
	if c.MaxPageBytes <= 0 {
		c.MaxPageBytes = 4 << 20
	}
	if c.IdleClose <= 0 {
		// Also the pace of pin renewals: well within tt_pins' TTL.
		c.IdleClose = 30 * time.Second
	}
	return c
}

// Blobs is the part of the blob store an executor reads.
type Blobs interface {
	Open(ctx context.Context, key string) (blob.Object, error)
}

// Deps are what an executor talks to.
type Deps struct {
	NC      *nats.Conn
	JS      jetstream.JetStream
	Models  jetstream.KeyValue
	Results *results.Store
	Blobs   Blobs
	// Pins is tt_pins: the executor pins the versions it has open.
	Pins jetstream.KeyValue
	Log  *slog.Logger
}

// Executor is a node's query executor.
type Executor struct {
	cfg      Config
	deps     Deps
	versions *versions
	slots    chan struct{}
}

// New returns an executor; Run starts it.
func New(cfg Config, deps Deps) *Executor {
	cfg = cfg.WithDefaults()
	return &Executor{cfg: cfg, deps: deps, versions: newVersions(cfg, deps), slots: make(chan struct{}, cfg.Slots)}
}

// Run serves queries until ctx ends.
func (e *Executor) Run(ctx context.Context, ready func()) error {
	svc, err := micro.AddService(e.deps.NC, micro.Config{
		Name:        "teatree-query",
		Version:     "1.0.0",
		Description: "read-only queries on snapshot versions",
		QueueGroup:  "tt-query",
	})
	if err != nil {
		return fmt.Errorf("query service: %w", err)
	}
	// Shut down in order: no new requests, then the running ones finish,
	// then the versions close.
	var running sync.WaitGroup
	defer e.versions.closeAll()
	defer running.Wait()
	defer svc.Stop()
	err = svc.AddEndpoint("query", micro.HandlerFunc(func(req micro.Request) {
		running.Add(1)
		go func() {
			defer running.Done()
			e.serve(ctx, req)
		}()
	}), micro.WithEndpointSubject(e.cfg.Names.QueryAll()))
	if err != nil {
		return fmt.Errorf("query endpoint: %w", err)
	}
	running.Add(1)
	go func() {
		defer running.Done()
		if err := e.runJobs(ctx, &running); err != nil {
			e.deps.Log.ErrorContext(ctx, "query jobs stopped", "err", err)
		}
	}()
	ready()
	tick := time.NewTicker(e.cfg.IdleClose / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			e.versions.collect()
			e.versions.renewPins(ctx)
		}
	}
}

func (e *Executor) serve(ctx context.Context, req micro.Request) {
	model, _ := e.cfg.Names.ParseQuery(req.Subject())
	q := &teatreev1.Query{}
	if err := wire.Unmarshal(req.Data(), q); err != nil {
		reply.Error(req, apierr.Errorf(apierr.InvalidArgument, `query body: want {"sql": "...", "params": [...], "format": "json"}: %v`, err))
		return
	}
	res, err := e.Query(ctx, model, q)
	if err != nil {
		reply.Error(req, err)
		return
	}
	_ = req.Respond(res.First, micro.WithHeaders(micro.Headers(results.Headers(res.ID, res.Meta, 1))))
}

// acquireSlot waits for a free slot until ctx ends.
func (e *Executor) acquireSlot(ctx context.Context) (func(), error) {
	select {
	case e.slots <- struct{}{}:
		return func() { <-e.slots }, nil
	case <-ctx.Done():
		return nil, apierr.Errorf(apierr.DeadlineExceeded, "no free query slot before the deadline")
	}
}
