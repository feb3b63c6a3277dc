// Package node runs a worker node: it advertises its capabilities and free
// slots in tt_workers, and runs a db-manager for every model whose lease in
// tt_owners names it. Its heartbeat keeps all its leases valid at once (see
// heartbeat.go); it stops a db-manager the moment the model's lease is
// released, taken back or granted to another.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/jsbatch"
	"github.com/teatree-dev/teatree/pkg/sizeclass"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// Config configures a node.
type Config struct {
	// ID names the node in leases and heartbeats; stable across restarts,
	// so a restarted node resumes the leases it held.
	ID           string
	Capabilities []string
	// Slots is how many models the node runs at once.
	Slots int
	// Memory and Threads are the DuckDB memory (bytes) and threads of all
	// the node's db-managers together, shared out per slot (0: half the
	// machine's memory, and its cores). Publications bounds the versions
	// published at once (0: the cores). They set the Manager template's
	// MemoryLimit, Threads and Publications.
	Memory       int64
	Threads      int
	Publications int
	// Size is the node's size class (sizeclass.Classes; "" for none): it
	// sets the defaults of Memory and Threads from the class and
	// advertises the capability size:Size, which models that ask for that
	// class or a smaller one need.
	Size string
	// Dir holds the read-write files of the models the node runs.
	Dir   string
	Names subject.Names
	// LeaseTTL is how long the node's leases outlive its last heartbeat.
	LeaseTTL time.Duration
	// WorkerTTL is the heartbeat bucket's TTL. The node heartbeats 3 times
	// in the shorter of the two.
	WorkerTTL time.Duration
	// Manager is the template of every db-manager's configuration.
	Manager dbmanager.Config
	// StartBound is how long a model's db-manager may keep failing before
	// the node gives its lease up, so that the dispatcher places it again
	// or its requests end unavailable (default DefaultStartBound).
	StartBound time.Duration
}

// DefaultStartBound is Config.StartBound's default.
const DefaultStartBound = 30 * time.Second

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if err := subject.ValidateModel(c.ID); err != nil {
		errs = append(errs, fmt.Errorf("node id: %w", err))
	}
	for _, cap := range c.Capabilities {
		if err := subject.ValidateCapability(cap); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Size != "" {
		if _, err := sizeclass.Lookup(c.Size); err != nil {
			errs = append(errs, err)
		} else if err := sizeclass.Validate(append(slices.Clone(c.Capabilities), sizeclass.Capability(c.Size))); err != nil {
			errs = append(errs, fmt.Errorf("--size %s: %w", c.Size, err))
		}
	}
	if c.Slots < 1 {
		errs = append(errs, fmt.Errorf("slots %d: want at least 1", c.Slots))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("node needs a data directory"))
	}
	if c.LeaseTTL <= 0 || c.WorkerTTL <= 0 {
		errs = append(errs, errors.New("node needs a lease ttl and a worker ttl"))
	}
	return errors.Join(errs...)
}

// Deps are what a node talks to.
type Deps struct {
	JS      jetstream.JetStream
	Models  jetstream.KeyValue
	Owners  jetstream.KeyValue
	Workers jetstream.KeyValue
	// Pins is tt_pins, for the db-managers' garbage collection.
	Pins jetstream.KeyValue
	// Functions is tt_functions, for the db-managers' call mutations.
	Functions jetstream.KeyValue
	Blobs     blob.Store
	Log       *slog.Logger
}

// Node is a worker node.
type Node struct {
	cfg  Config
	deps Deps
	log  *slog.Logger

	mu     sync.Mutex
	models map[string]*hosted
	// stopping holds, per model, a channel that closes once the model's
	// detached db-manager has stopped (and a deleted model's files are
	// gone): a new db-manager of the model waits for it, the event loop
	// never does.
	stopping map[string]<-chan struct{}
	// beat is when the newest successful heartbeat was sent; lapse is set
	// when one came a ttl or more after the one before.
	beat  time.Time
	lapse bool
	// leaving is set once the node stops: its heartbeat offers no slot.
	leaving bool
	wg      sync.WaitGroup
}

// hosted is a model whose db-manager runs on this node.
type hosted struct {
	lease  *teatreev1.Lease
	rev    uint64 // the lease's KV revision to release it from
	cancel context.CancelFunc
	done   chan struct{}
	// prev closes once the model's previous db-manager on this node has
	// stopped; nil when there was none.
	prev <-chan struct{}
	// close asks the db-manager to close the model if it is settled.
	close chan chan<- bool
	// drain, closed by release, asks it to hand the model over.
	drain     chan struct{}
	drainOnce sync.Once
	// used is when the db-manager last committed (or started), in Unix
	// nanoseconds: the node closes its least recently used models first.
	used atomic.Int64
}

// New returns a node; Run starts it.
func New(cfg Config, deps Deps) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := deps.Log.With("node", cfg.ID)
	cfg = cfg.sized().budget(log)
	// The node's models write their events together.
	cfg.Manager.Events = jsbatch.NewCoalescer(deps.JS, log, nil)
	return &Node{cfg: cfg, deps: deps, log: log, models: map[string]*hosted{},
		stopping: map[string]<-chan struct{}{}}, nil
}

// Run serves until ctx ends, then stops every db-manager and gives up its
// leases so that the models can move at once. A node stopped while it
// starts has stopped, not failed.
func (n *Node) Run(ctx context.Context, ready func()) error {
	err := n.run(ctx, ready)
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (n *Node) run(ctx context.Context, ready func()) error {
	if err := n.heartbeat(ctx); err != nil {
		return err
	}
	leases, err := n.deps.Owners.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch leases: %w", err)
	}
	defer func() { leases.Stop() }()
	ready = sync.OnceFunc(ready) // a watch started again after a lapse ends its initial leases too
	specs, err := n.deps.Models.WatchAll(ctx, jetstream.UpdatesOnly())
	if err != nil {
		return fmt.Errorf("watch models: %w", err)
	}
	defer specs.Stop()
	// Evictions and releases run beside the event loop: closing a model
	// waits for its db-manager, which must not delay leases and heartbeats.
	evict, err := n.deps.JS.Conn().Subscribe(n.cfg.Names.NodeEvict(n.cfg.ID), func(msg *nats.Msg) {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.evict(ctx, msg)
		}()
	})
	if err != nil {
		return fmt.Errorf("subscribe to evictions: %w", err)
	}
	defer evict.Unsubscribe()
	release, err := n.deps.JS.Conn().Subscribe(n.cfg.Names.NodeRelease(n.cfg.ID), func(msg *nats.Msg) {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.release(ctx, msg)
		}()
	})
	if err != nil {
		return fmt.Errorf("subscribe to releases: %w", err)
	}
	defer release.Unsubscribe()
	defer n.stopAll()

	tick := time.NewTicker(n.ttl() / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-leases.Updates():
			if !ok {
				return errors.New("lease watch closed")
			}
			if e == nil {
				ready() // the initial leases are in: the node is caught up
				continue
			}
			n.onLease(ctx, e)
		case e, ok := <-specs.Updates():
			if !ok {
				return errors.New("model watch closed")
			}
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				n.onDelete(ctx, e.Key())
			}
		case <-tick.C:
			if n.live() != nil {
				n.dropAll(ctx)
			}
			if err := n.heartbeat(ctx); err != nil {
				n.log.WarnContext(ctx, "heartbeat", "err", err)
				continue
			}
			if n.resumed() {
				// Live again after a lapse: the leases that still name this
				// node at their epoch are its own, as after a restart. A new
				// watch starts from every lease as it is now.
				leases.Stop()
				// A failed watch must not replace leases: the deferred
				// Stop would call it on nil.
				w, err := n.deps.Owners.WatchAll(ctx)
				if err != nil {
					return fmt.Errorf("watch leases: %w", err)
				}
				leases = w
			}
		}
	}
}

// onLease starts a db-manager for a lease granted to this node, and stops
// the db-manager of a lease this node lost: released (by someone else),
// taken back, or granted to another.
func (n *Node) onLease(ctx context.Context, e jetstream.KeyValueEntry) {
	model := e.Key()
	var l *teatreev1.Lease
	if e.Operation() == jetstream.KeyValuePut {
		var err error
		if l, err = catalog.DecodeLease(e.Value()); err != nil {
			return
		}
	}
	mine := l.GetNode() == n.cfg.ID && l.GetEpoch() != 0
	n.mu.Lock()
	defer n.mu.Unlock()
	if h := n.models[model]; h != nil {
		if mine && h.lease.GetEpoch() == l.GetEpoch() {
			h.rev = max(h.rev, e.Revision())
			return
		}
		// The old db-manager must be gone before a new one opens the
		// file: the new one waits for it (see stopping).
		n.log.WarnContext(ctx, "lease lost; stopping db-manager", "model", model, "epoch", h.lease.GetEpoch())
		n.detachLocked(model, h)
	}
	if !mine || n.liveLocked() != nil {
		// Not this node's; or granted while its heartbeat lapsed: the
		// watch started again after the next heartbeat starts it, if the
		// lease is still this node's then.
		return
	}
	mctx, cancel := context.WithCancel(ctx)
	h := &hosted{lease: l, rev: e.Revision(), cancel: cancel, done: make(chan struct{}),
		prev: n.stopping[model], close: make(chan chan<- bool), drain: make(chan struct{})}
	h.used.Store(time.Now().UnixNano())
	n.models[model] = h
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(h.done)
		if h.prev != nil {
			select {
			case <-h.prev:
			case <-mctx.Done():
				return
			}
		}
		n.supervise(mctx, model, h)
	}()
}

// supervise runs a model's db-manager, restarting it with backoff after a
// failure of the node (disk, DuckDB) until the lease ends or the model
// goes idle.
func (n *Node) supervise(ctx context.Context, model string, h *hosted) {
	backoff := 100 * time.Millisecond
	bound := n.cfg.StartBound
	if bound <= 0 {
		bound = DefaultStartBound
	}
	var failingSince time.Time
	attempts := 0
	for ctx.Err() == nil {
		started := time.Now()
		err := n.runManager(ctx, model, h)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, dbmanager.ErrIdle) {
			n.unload(ctx, model, h)
			return
		}
		if errors.Is(err, catalog.ErrLeaseLost) {
			// A newer holder took the model over (its catalog epoch is
			// newer than ours): restarting would only be refused again.
			n.log.WarnContext(ctx, "model taken over by a newer holder; stopping its db-manager", "model", model, "err", err)
			n.forget(model, h)
			return
		}
		if failingSince.IsZero() || time.Since(started) > bound {
			failingSince, attempts = started, 0 // it ran a while: a new failure
		}
		attempts++
		if time.Since(failingSince) > bound {
			// Say so where an operator looks, and let the model go: the
			// dispatcher places it again (elsewhere if it can) or ends
			// its requests unavailable, instead of them waiting in silence.
			n.log.ErrorContext(ctx, "db-manager keeps failing; giving its lease up", "model", model, "err", err, "failing_for", time.Since(failingSince).Round(time.Millisecond))
			n.recordStartFailure(ctx, model, h, failingSince, attempts, err)
			n.unload(ctx, model, h)
			return
		}
		n.log.ErrorContext(ctx, "db-manager stopped; restarting", "model", model, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 30*time.Second)
	}
}

func (n *Node) runManager(ctx context.Context, model string, h *hosted) error {
	epoch := h.lease.GetEpoch()
	spec, _, err := catalog.GetModel(ctx, n.deps.Models, model)
	if err != nil {
		return err
	}
	if spec.GetCreatedSeq() == catalog.PendingSeq {
		return fmt.Errorf("model %s: creation not finished", model)
	}
	cfg := n.cfg.Manager
	cfg.Model, cfg.Spec, cfg.Epoch, cfg.Node, cfg.Names = model, spec, epoch, n.cfg.ID, n.cfg.Names
	cfg.Close, cfg.Drain = h.close, h.drain
	cfg.Activity = func() { h.used.Store(time.Now().UnixNano()) }
	if spec.GetStartFailure() != nil {
		cfg.Started = func() { n.clearStartFailure(ctx, model) }
	}
	// One directory per incarnation of the model id: a model deleted and
	// created again never opens the old one's file.
	cfg.Dir = filepath.Join(n.cfg.Dir, model, strconv.FormatUint(spec.GetCreatedSeq(), 10))
	m := dbmanager.New(cfg, dbmanager.Deps{
		JS: n.deps.JS, Models: n.deps.Models, Pins: n.deps.Pins, Functions: n.deps.Functions, Blobs: n.deps.Blobs, Log: n.deps.Log,
		Fence: func(ctx context.Context) error {
			if err := n.live(); err != nil {
				return fmt.Errorf("model %s at epoch %d: %w", model, epoch, err)
			}
			return catalog.Fence(ctx, n.deps.Owners, model, n.cfg.ID, epoch)
		},
	})
	return m.Run(ctx)
}

// unload forgets an idle model and gives up its lease, freeing the slot;
// the dispatcher places the model again when its next mutation comes.
func (n *Node) unload(ctx context.Context, model string, h *hosted) {
	rev, ok := n.forget(model, h)
	if !ok {
		return
	}
	if err := catalog.Release(ctx, n.deps.Owners, model, rev); err != nil {
		// Taken back or granted to another meanwhile: it is not this
		// node's to release any more.
		n.log.WarnContext(ctx, "release lease of idle model", "model", model, "err", err)
		return
	}
	n.log.InfoContext(ctx, "unloaded idle model", "model", model)
	// Say at once that a slot is free: a dispatcher may be waiting for it.
	if err := n.heartbeat(ctx); err != nil {
		n.log.WarnContext(ctx, "heartbeat", "err", err)
	}
}

// evictWait bounds how long an eviction waits for a db-manager to answer
// and to stop.
const evictWait = 10 * time.Second

// evict closes the least recently used settled model to free a slot for a
// dispatcher's placement, and replies with the model closed (empty when
// none was settled). Closing goes through the idle unload (ErrIdle, then
// the lease is released), so fencing and exactly-once hold as for an idle
// model.
func (n *Node) evict(ctx context.Context, msg *nats.Msg) {
	n.mu.Lock()
	type candidate struct {
		model string
		h     *hosted
		used  int64
	}
	cands := make([]candidate, 0, len(n.models))
	for model, h := range n.models {
		cands = append(cands, candidate{model, h, h.used.Load()})
	}
	n.mu.Unlock()
	slices.SortFunc(cands, func(a, b candidate) int { return int(min(max(a.used-b.used, -1), 1)) })
	closed := ""
	for _, c := range cands {
		reply := make(chan bool, 1) // the writer never blocks on it
		select {
		case c.h.close <- reply:
		case <-c.h.done:
			continue
		case <-ctx.Done():
			return
		case <-time.After(evictWait):
			continue // busy with a long batch: not the one to close
		}
		if !<-reply {
			continue
		}
		select {
		case <-c.h.done: // unloaded: the lease is released
			closed = c.model
		case <-ctx.Done():
			return
		case <-time.After(evictWait):
			n.log.WarnContext(ctx, "evicted model did not stop in time", "model", c.model)
		}
		break
	}
	if closed != "" {
		n.log.InfoContext(ctx, "closed least recently used model for a placement", "model", closed)
	}
	_ = msg.Respond([]byte(closed))
}

// forget drops a model whose db-manager ended for good, freeing its slot,
// if h is still the model's; it returns the lease revision to release.
func (n *Node) forget(model string, h *hosted) (rev uint64, ok bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.models[model] != h {
		return 0, false
	}
	delete(n.models, model)
	return h.rev, true
}

// onDelete stops a deleted model and removes its files.
func (n *Node) onDelete(ctx context.Context, model string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	h := n.models[model]
	if h != nil {
		n.detachLocked(model, h)
	}
	// Remove the files once the db-manager has stopped, beside the event
	// loop; a model of the same id created meanwhile waits for it.
	n.afterLocked(model, n.stopping[model], func() {
		if err := os.RemoveAll(filepath.Join(n.cfg.Dir, model)); err != nil {
			n.log.WarnContext(ctx, "remove files of deleted model", "model", model, "err", err)
		}
		if h != nil {
			n.sweepBlobs(ctx, model)
		}
	})
}

// sweepBlobs removes what a deleted model's db-manager published after the
// deleting client had removed the model's blobs: a version being written
// when its lease went. A model created again with the same id keeps its
// blobs.
func (n *Node) sweepBlobs(ctx context.Context, model string) {
	if _, err := n.deps.Models.Get(ctx, model); !errors.Is(err, jetstream.ErrKeyNotFound) {
		return
	}
	if err := n.deps.Blobs.DeleteAll(ctx, blob.ModelPrefix(model)); err != nil {
		n.log.WarnContext(ctx, "remove blobs of deleted model", "model", model, "err", err)
	}
}

// afterLocked runs f, beside the event loop, once wait (if any) has
// closed, and makes that the model's stopping: its next db-manager waits
// until f is done.
func (n *Node) afterLocked(model string, wait <-chan struct{}, f func()) {
	done := make(chan struct{})
	n.stopping[model] = done
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.stopped(model, done)
		if wait != nil {
			<-wait
		}
		f()
	}()
}

// stopped closes done and forgets it as the model's stopping channel.
func (n *Node) stopped(model string, done chan struct{}) {
	close(done)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping[model] == done {
		delete(n.stopping, model)
	}
}

// detachLocked stops a db-manager and forgets it without waiting for it
// (stopping can take as long as a commit): the model's next db-manager
// waits for it through n.stopping.
func (n *Node) detachLocked(model string, h *hosted) {
	h.cancel()
	delete(n.models, model)
	n.afterLocked(model, h.done, func() {})
}

// stopAll stops every db-manager, releases its lease and, last, removes the
// node's heartbeat. Meanwhile the heartbeat offers no free slot. So a
// dispatcher places nothing more here, and places the models elsewhere as
// soon as their next request comes, not a lease TTL later.
func (n *Node) stopAll() {
	n.mu.Lock()
	n.leaving = true
	held := n.models
	n.models = map[string]*hosted{}
	for _, h := range held {
		h.cancel()
	}
	n.mu.Unlock()
	if err := n.heartbeat(context.Background()); err != nil {
		n.log.Warn("heartbeat of a node stopping", "err", err)
	}
	var wg sync.WaitGroup
	for model, h := range held {
		wg.Go(func() {
			<-h.done
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := catalog.Release(ctx, n.deps.Owners, model, h.rev); err != nil {
				n.log.WarnContext(ctx, "release lease", "model", model, "err", err)
			}
		})
	}
	wg.Wait()
	n.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.deps.Workers.Delete(ctx, n.cfg.ID); err != nil {
		n.log.WarnContext(ctx, "remove the heartbeat of a node stopping; it expires after the worker ttl", "err", err)
	}
}
