// Package dispatcher places models on nodes. It reads the headers of every
// mutation (never its body): a mutation for a model without a live lease
// gets the model placed on a node whose capabilities cover the model's and
// that has a free slot; a mutation for no model, or an invalid one, ends
// with a failed notification right away. It also takes in compute calls
// (tt.call.fn.<model>) and queues each as a job for the workers of its
// function's route.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Config configures the dispatcher.
type Config struct {
	Names     subject.Names
	LeaseTTL  time.Duration
	WorkerTTL time.Duration
	// PlacementGrace is how long a mutation waits for a node that can serve
	// its model, and a compute call for a worker that can run it, before
	// it fails as unavailable.
	PlacementGrace time.Duration
	// Durable is the consumer name on TT_MUT shared by all dispatchers.
	Durable string
}

// Deps are what the dispatcher talks to.
type Deps struct {
	JS      jetstream.JetStream
	Models  jetstream.KeyValue
	Owners  jetstream.KeyValue
	Workers jetstream.KeyValue
	// Functions, Compute and Blobs serve the intake of compute calls: the
	// definitions in tt_functions, the workers' heartbeats in tt_compute,
	// and the snapshot store the jobs' URLs point into.
	Functions jetstream.KeyValue
	Compute   jetstream.KeyValue
	Blobs     Blobs
	Log       *slog.Logger
}

// Dispatcher is the dispatcher service.
type Dispatcher struct {
	cfg  Config
	deps Deps
	mut  jetstream.Stream

	mu sync.Mutex
	// owners: each model's lease as last seen written.
	owners  map[string]leaseSeen
	workers map[string]workerSeen
	// released carries models whose lease was given up (an idle model),
	// to be looked at at once: a mutation may have come just before.
	released chan string
	// rejected: when each model's requests were last rejected as
	// unavailable, for reconcile to give the notifier time (rejectFailed).
	rejected map[string]time.Time
	// moving: the target of each move under way.
	moving map[string]string
}

type workerSeen struct {
	w  *teatreev1.Worker
	at time.Time
}

// New returns a dispatcher; Run starts it.
func New(cfg Config, deps Deps) *Dispatcher {
	if cfg.Durable == "" {
		cfg.Durable = "dispatcher"
	}
	if cfg.PlacementGrace == 0 {
		cfg.PlacementGrace = 30 * time.Second
	}
	if cfg.Names == (subject.Names{}) {
		cfg.Names = subject.Default()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = natsboot.DefaultLeaseTTL
	}
	if cfg.WorkerTTL <= 0 {
		cfg.WorkerTTL = natsboot.DefaultWorkerTTL
	}
	return &Dispatcher{cfg: cfg, deps: deps, owners: map[string]leaseSeen{}, workers: map[string]workerSeen{},
		released: make(chan string, 1024), rejected: map[string]time.Time{},
		moving: map[string]string{}}
}

// retryDelay is how long a request the dispatcher could not settle waits
// before it is looked at again.
const retryDelay = time.Second

// Run places models until ctx ends.
func (d *Dispatcher) Run(ctx context.Context, ready func()) error {
	names := d.cfg.Names
	var err error
	if d.mut, err = d.deps.JS.Stream(ctx, names.MutStream()); err != nil {
		return fmt.Errorf("dispatcher: %w", err)
	}
	if err := d.watch(ctx, d.deps.Owners, d.onLease); err != nil {
		return err
	}
	if err := d.watch(ctx, d.deps.Workers, d.onWorker); err != nil {
		return err
	}
	cons, err := natsboot.TakeConsumer(ctx, d.deps.JS, names.MutStream(), jetstream.ConsumerConfig{
		Durable:       d.cfg.Durable,
		Description:   "places models that have mutations waiting",
		AckPolicy:     jetstream.AckExplicitPolicy,
		HeadersOnly:   true,
		FilterSubject: names.MutAll(),
		MaxAckPending: 10_000,
	})
	if err != nil {
		return fmt.Errorf("dispatcher consumer: %w", err)
	}
	// A new leader may start once Run has returned: no handler may still
	// be placing a model then.
	cctx, stopConsume := context.WithCancel(ctx)
	var consumeErr error
	consumed := make(chan struct{}) // closed when Consume has returned
	go func() {
		defer close(consumed)
		consumeErr = natsboot.Consume(cctx, cons, natsboot.ConsumeConfig{Log: d.deps.Log}, func(msg jetstream.Msg) {
			if err := d.handle(ctx, msg); err != nil {
				switch {
				case ctx.Err() != nil:
				case errors.Is(err, errNodesFull), errors.Is(err, errMoving):
					// Waiting for a slot is normal under load: no warning per
					// waiting request and second.
					d.deps.Log.DebugContext(ctx, "dispatch", "subject", msg.Subject(), "err", err)
				default:
					d.deps.Log.WarnContext(ctx, "dispatch", "subject", msg.Subject(), "err", err)
				}
				_ = msg.NakWithDelay(retryDelay)
				return
			}
			_ = msg.Ack()
		})
	}()
	defer func() {
		stopConsume()
		<-consumed
	}()
	stopMoves, err := d.serveMoves(ctx)
	if err != nil {
		return err
	}
	defer stopMoves()
	stopIntake, err := d.runIntake(ctx)
	if err != nil {
		return err
	}
	defer stopIntake()
	ready()
	tick := time.NewTicker(d.cfg.LeaseTTL / 2)
	defer tick.Stop()
	d.reconcile(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-consumed:
			if consumeErr != nil {
				return fmt.Errorf("dispatcher consume: %w", consumeErr)
			}
			return nil // ctx ended
		case <-tick.C:
			d.reconcile(ctx, false)
		case m := <-d.released:
			d.reconcileModels(ctx, []string{m})
		}
	}
}

// watch follows a bucket in the background, calling f for every put.
func (d *Dispatcher) watch(ctx context.Context, kv jetstream.KeyValue, f func(jetstream.KeyValueEntry)) error {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch %s: %w", kv.Bucket(), err)
	}
	initial := make(chan struct{})
	go func() {
		defer w.Stop()
		for e := range w.Updates() {
			if e == nil {
				close(initial)
				continue
			}
			f(e)
		}
	}()
	select {
	case <-initial:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *Dispatcher) onWorker(e jetstream.KeyValueEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	w := &teatreev1.Worker{}
	if e.Operation() != jetstream.KeyValuePut || wire.Unmarshal(e.Value(), w) != nil {
		delete(d.workers, e.Key())
		return
	}
	d.workers[e.Key()] = workerSeen{w: w, at: e.Created()}
}

// liveLocked reports whether a node heartbeats: its newest heartbeat is
// younger than the worker TTL, and than the lease TTL, past which the
// node's leases no longer hold (a lease granted to it would be stale at
// once).
func (d *Dispatcher) liveLocked(ws workerSeen) bool {
	return time.Since(ws.at) < min(d.cfg.WorkerTTL, d.cfg.LeaseTTL)
}

// handle decides about one mutation from its subject and headers.
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	m, ok := d.cfg.Names.ParseMut(msg.Subject())
	if !ok {
		return d.reject(ctx, msg, meta, m, apierr.Errorf(apierr.InvalidArgument, "subject %q: want %s", msg.Subject(), d.cfg.Names.Mut("<model>", "<op>")+"[.<principal>]"))
	}
	model := m.Model
	if err := subject.ValidateModel(model); err != nil {
		return d.reject(ctx, msg, meta, m, err)
	}
	if d.hasOwner(model) {
		return nil
	}
	spec, _, err := catalog.GetModel(ctx, d.deps.Models, model)
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.NotFound {
		return d.reject(ctx, msg, meta, m, err)
	}
	if err != nil {
		return err
	}
	switch {
	case spec.GetCreatedSeq() == catalog.PendingSeq:
		return fmt.Errorf("model %s: creation not finished", model)
	case meta.Sequence.Stream <= spec.GetCreatedSeq():
		return d.reject(ctx, msg, meta, m, apierr.Errorf(apierr.NotFound, "model %s did not exist when this request was published", model))
	}
	seq := meta.Sequence.Stream
	err = d.place(ctx, spec, seq)
	switch {
	case errors.Is(err, errStartFailed):
		isDue, cause := startFailed(spec)
		return d.rejectUnavailable(ctx, m, msg.Headers(), seq, isDue, cause)
	case errors.Is(err, errNoNode) && time.Since(meta.Timestamp) > d.cfg.PlacementGrace:
		return d.rejectUnavailable(ctx, m, msg.Headers(), seq, d.pastGrace, apierr.Errorf(apierr.Unavailable, "no live node has the capabilities %v that model %s needs", spec.GetCapabilities(), model))
	}
	return err
}

// pastGrace: a request is due to end unavailable once it has waited the
// placement grace for a capable node.
func (d *Dispatcher) pastGrace(_ uint64, published time.Time) bool {
	return time.Since(published) > d.cfg.PlacementGrace
}

// startFailed returns which requests of a model that no node could start
// are due to end unavailable (those waiting when the failure was
// recorded), and the cause their rejection names.
func startFailed(spec *teatreev1.ModelSpec) (due, error) {
	f := spec.GetStartFailure()
	return func(seq uint64, _ time.Time) bool { return seq <= f.GetThroughSeq() },
		apierr.Errorf(apierr.Unavailable, "model %s cannot start: node %s gave it up after %d failed starts since %s: %s",
			spec.GetId(), f.GetNode(), f.GetAttempts(), f.GetSince(), f.GetMessage())
}

// reconcile takes back stale leases and places models that have mutations
// waiting but no live lease: their node died after the mutation was
// dispatched. At start it checks every model; later only those whose
// lease was seen and is not a live node's.
func (d *Dispatcher) reconcile(ctx context.Context, all bool) {
	var models []string
	if all {
		keys, err := d.deps.Models.ListKeys(ctx)
		if err != nil {
			d.deps.Log.WarnContext(ctx, "reconcile: list models", "err", err)
			return
		}
		for k := range keys.Keys() {
			models = append(models, k)
		}
	} else {
		d.mu.Lock()
		for m, ls := range d.owners {
			if !d.ownedLocked(ls) {
				models = append(models, m)
			}
		}
		d.mu.Unlock()
	}
	d.reconcileModels(ctx, models)
}

// reconcileModels reconciles each of models in turn.
func (d *Dispatcher) reconcileModels(ctx context.Context, models []string) {
	for _, m := range models {
		settled, err := d.reconcileModel(ctx, m)
		if err != nil && ctx.Err() == nil {
			d.deps.Log.WarnContext(ctx, "reconcile", "model", m, "err", err)
		}
		// A lease that is not a live node's stays listed until its model
		// is settled, so that the next tick looks at it again; a live one
		// is the watcher's.
		d.mu.Lock()
		if settled {
			delete(d.rejected, m)
		}
		ls, ok := d.owners[m]
		switch {
		case settled && ok && !d.ownedLocked(ls):
			delete(d.owners, m)
		case !settled && !ok:
			d.owners[m] = leaseSeen{}
		}
		d.mu.Unlock()
	}
}

// reconcileModel takes model's lease back if it is stale, and places the
// model if it has mutations waiting and no live lease. It reports whether
// the model is settled: placed, or with nothing to place.
func (d *Dispatcher) reconcileModel(ctx context.Context, model string) (bool, error) {
	if d.hasOwner(model) {
		return true, nil
	}
	// Whether or not mutations wait, as a lease used to expire: the next
	// mutation then places the model at once. A lease that still holds (a
	// rejection under way, a grant half done) is looked at again at the
	// next tick.
	if l, err := d.takeBack(ctx, model); err != nil || l != nil {
		return false, err
	}
	spec, _, err := catalog.GetModel(ctx, d.deps.Models, model)
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.NotFound {
		return true, nil
	}
	if err != nil || spec.GetCreatedSeq() == catalog.PendingSeq {
		return false, err
	}
	last, err := d.mut.GetLastMsgForSubject(ctx, d.cfg.Names.MutModel(model))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if last.Sequence <= max(spec.GetAppliedSeq(), spec.GetCreatedSeq()) {
		return true, nil
	}
	err = d.place(ctx, spec, last.Sequence)
	switch {
	case errors.Is(err, errStartFailed):
		return false, d.rejectFailed(ctx, spec, last)
	case errors.Is(err, errNoNode) || errors.Is(err, errNodesFull) || errors.Is(err, errMoving):
		return false, nil // a node may join, or a slot free up, before the next tick
	}
	return err == nil, err
}

// rejectFailed ends the requests of a model that no node could start and
// that were waiting then, in one rejection (reconcile is what finds them:
// handle let them go once it placed the model). It waits retryDelay after
// the model's previous rejection, as a message handle could not settle
// does: the notifier finishes that rejection meanwhile, and rejecting
// again at once would take the model over from it again and again.
func (d *Dispatcher) rejectFailed(ctx context.Context, spec *teatreev1.ModelSpec, last *jetstream.RawStreamMsg) error {
	model := spec.GetId()
	d.mu.Lock()
	recent := time.Since(d.rejected[model]) < retryDelay
	d.mu.Unlock()
	if recent {
		return nil // the next tick looks again
	}
	m, _ := d.cfg.Names.ParseMut(last.Subject)
	m.Model = model
	isDue, cause := startFailed(spec)
	return d.rejectUnavailable(ctx, m, last.Header, last.Sequence, isDue, cause)
}
