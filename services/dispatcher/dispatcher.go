// Package dispatcher places models on nodes. It reads the headers of every
// mutation (never its body): a mutation for a model without a live lease
// gets the model placed on a node whose capabilities cover the model's and
// that has a free slot; a mutation for no model, or an invalid one, ends
// with a failed notification right away.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/outcome"
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
	// its model before it fails as unavailable.
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
	Log     *slog.Logger
}

// Dispatcher is the dispatcher service.
type Dispatcher struct {
	cfg  Config
	deps Deps
	mut  jetstream.Stream

	mu sync.Mutex
	// owners: when each model's lease was last seen written.
	owners  map[string]time.Time
	workers map[string]workerSeen
	// released carries models whose lease was given up (an idle model),
	// to be looked at at once: a mutation may have come just before.
	released chan string
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
	return &Dispatcher{cfg: cfg, deps: deps, owners: map[string]time.Time{}, workers: map[string]workerSeen{},
		released: make(chan string, 1024)}
}

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
	cons, err := d.deps.JS.CreateOrUpdateConsumer(ctx, names.MutStream(), jetstream.ConsumerConfig{
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
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if err := d.handle(ctx, msg); err != nil {
			switch {
			case ctx.Err() != nil:
			case errors.Is(err, errNodesFull):
				// Waiting for a slot is normal under load: no warning per
				// waiting request and second.
				d.deps.Log.DebugContext(ctx, "dispatch", "subject", msg.Subject(), "err", err)
			default:
				d.deps.Log.WarnContext(ctx, "dispatch", "subject", msg.Subject(), "err", err)
			}
			_ = msg.NakWithDelay(time.Second)
			return
		}
		_ = msg.Ack()
	})
	if err != nil {
		return fmt.Errorf("dispatcher consume: %w", err)
	}
	defer cc.Stop()
	ready()
	tick := time.NewTicker(d.cfg.LeaseTTL / 2)
	defer tick.Stop()
	d.reconcile(ctx, true)
	for {
		select {
		case <-ctx.Done():
			return nil
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

func (d *Dispatcher) onLease(e jetstream.KeyValueEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.Operation() == jetstream.KeyValuePut && !isRejectLease(e.Value()) {
		d.owners[e.Key()] = e.Created()
	} else if e.Operation() == jetstream.KeyValuePut {
		// A dispatcher holds the model only while it rejects one request:
		// no owner will apply what comes meanwhile, so the model stays
		// unowned here and its mutations keep being looked at (handle and
		// place wait for the release).
		d.owners[e.Key()] = time.Time{}
	} else {
		// A released or revoked lease is stale at once: the next reconcile
		// places the model if it has mutations waiting.
		d.owners[e.Key()] = time.Time{}
		select {
		case d.released <- e.Key():
		default: // the next tick looks at it
		}
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

// hasOwner reports whether model's lease was renewed recently enough to
// be alive. Expiry removes a lease silently, so age is what tells.
func (d *Dispatcher) hasOwner(model string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	at, ok := d.owners[model]
	return ok && time.Since(at) < d.cfg.LeaseTTL
}

// handle decides about one mutation from its subject and headers.
func (d *Dispatcher) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	model, op, ok := d.cfg.Names.ParseMut(msg.Subject())
	if !ok {
		return d.reject(ctx, msg, meta, model, op, apierr.Errorf(apierr.InvalidArgument, "subject %q: want %s", msg.Subject(), d.cfg.Names.Mut("<model>", "<op>")))
	}
	if err := subject.ValidateModel(model); err != nil {
		return d.reject(ctx, msg, meta, model, op, err)
	}
	if d.hasOwner(model) {
		return nil
	}
	spec, _, err := catalog.GetModel(ctx, d.deps.Models, model)
	var ae *apierr.Error
	if errors.As(err, &ae) && ae.Code == apierr.NotFound {
		return d.reject(ctx, msg, meta, model, op, err)
	}
	if err != nil {
		return err
	}
	switch {
	case spec.GetCreatedSeq() == catalog.PendingSeq:
		return fmt.Errorf("model %s: creation not finished", model)
	case meta.Sequence.Stream <= spec.GetCreatedSeq():
		return d.reject(ctx, msg, meta, model, op, apierr.Errorf(apierr.NotFound, "model %s did not exist when this request was published", model))
	}
	err = d.place(ctx, spec)
	if errors.Is(err, errNoNode) && time.Since(meta.Timestamp) > d.cfg.PlacementGrace {
		return d.rejectUnavailable(ctx, msg, meta, model, op, apierr.Errorf(apierr.Unavailable, "no live node has the capabilities %v that model %s needs", spec.GetCapabilities(), model))
	}
	return err
}

// RejectNode is the node id a dispatcher holds a model's lease under while
// it rejects a request of the model. Node ids follow the model id rule, so
// no node can have it, and no node ever runs such a lease.
const RejectNode = "_dispatcher"

// errRejecting is returned while a dispatcher holds a model to reject one
// of its requests: the message is looked at again once it is released.
var errRejecting = errors.New("a dispatcher holds the model to reject a request")

// isRejectLease reports whether a tt_owners value is a dispatcher's lease.
func isRejectLease(b []byte) bool {
	l, err := catalog.DecodeLease(b)
	return err == nil && l.GetNode() == RejectNode
}

// heldBy explains a grant that failed because the lease is held: nil when
// a node has it (that node applies the model's mutations), errRejecting
// when a dispatcher has it for a moment.
func (d *Dispatcher) heldBy(ctx context.Context, model string) error {
	l, _, err := catalog.GetLease(ctx, d.deps.Owners, model)
	switch {
	case err != nil:
		return err
	case l == nil:
		return fmt.Errorf("model %s: the lease was released meanwhile; look again", model)
	case l.GetNode() == RejectNode:
		return fmt.Errorf("model %s: %w", model, errRejecting)
	}
	return nil
}

// rejectUnavailable ends a request that no node could take in time with a
// failed outcome, without ever contradicting a node that applies it. The
// dispatcher takes the model as a writer of its own (its lease and epoch),
// so that any earlier holder is fenced off and the outcome is trusted as
// the newest word on the request; it announces the rejection on
// tt.evt.<model>.reject, where the notifier commits it (catalog.Reject),
// notifies and deletes the message; then it lets the model go. A node that
// got the lease first keeps it and applies the request instead.
//
// A dispatcher that dies between the grant and the release leaves its
// lease to expire after the lease TTL: the model waits that long for a
// node, which is no worse than a node dying.
func (d *Dispatcher) rejectUnavailable(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, model, op string, cause error) error {
	epoch, rev, err := catalog.Grant(ctx, d.deps.Owners, model, RejectNode)
	if errors.Is(err, catalog.ErrLeaseHeld) {
		return d.heldBy(ctx, model)
	}
	if err != nil {
		return err
	}
	defer func() {
		// Even when ctx ended: a lease left behind blocks the model for a TTL.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := catalog.Release(rctx, d.deps.Owners, model, rev); err != nil {
			d.deps.Log.WarnContext(ctx, "release the lease of a rejection; it expires after the lease ttl", "model", model, "err", err)
		}
	}()
	seq := meta.Sequence.Stream
	spec, err := catalog.TakeOver(ctx, d.deps.Models, model, epoch)
	if err != nil {
		return fmt.Errorf("reject request %d: %w", seq, err)
	}
	if seq <= spec.GetAppliedSeq() {
		return nil // an earlier holder applied it
	}
	if _, err := d.mut.GetMsg(ctx, seq); errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil // rejected already: the notifier finished it
	} else if err != nil {
		return err
	}
	statuses, err := d.unservable(ctx, model, max(spec.GetAppliedSeq(), spec.GetCreatedSeq()), seq, cause)
	if err != nil {
		return err
	}
	statuses = append(statuses, failedStatus(model, op, msg.Headers(), seq, cause))
	ev := &teatreev1.Outcomes{Model: model, Epoch: epoch, Statuses: statuses}
	if err := d.publish(ctx, d.cfg.Names.Evt(model, subject.EventReject), subject.RejectMsgID(model, seq, epoch), ev); err != nil {
		return fmt.Errorf("reject request %d: %w", seq, err)
	}
	d.deps.Log.InfoContext(ctx, "rejected requests: no node", "model", model, "seq", seq, "requests", len(statuses), "epoch", epoch)
	return nil
}

// maxRejectBatch bounds the earlier requests one rejection names.
const maxRejectBatch = 1000

// unservable returns failed statuses for the requests of model after seq
// from and before seq through that are still in TT_MUT and past the
// placement grace, oldest first. A rejection names these earlier ones too:
// the notifier drops an event whose epoch is no longer the model's, so
// each rejection takes over from the previous one and must carry what that
// one may not have finished.
func (d *Dispatcher) unservable(ctx context.Context, model string, from, through uint64, cause error) ([]*teatreev1.RequestStatus, error) {
	cons, err := d.mut.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{d.cfg.Names.MutModel(model)},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from + 1,
		HeadersOnly:       true,
		InactiveThreshold: 10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("read the requests of %s to reject: %w", model, err)
	}
	var statuses []*teatreev1.RequestStatus
	for len(statuses) < maxRejectBatch {
		msg, err := cons.Next(jetstream.FetchMaxWait(2 * time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			break // through was deleted meanwhile: nothing is left to read
		}
		meta, err := msg.Metadata()
		if err != nil {
			return nil, err
		}
		seq := meta.Sequence.Stream
		if seq >= through {
			break
		}
		// A bad subject got its rejection already; a young request may
		// still find a node.
		if _, op, ok := d.cfg.Names.ParseMut(msg.Subject()); ok && time.Since(meta.Timestamp) > d.cfg.PlacementGrace {
			statuses = append(statuses, failedStatus(model, op, msg.Headers(), seq, cause))
		}
		if meta.NumPending == 0 {
			break
		}
	}
	return statuses, nil
}

// failedStatus ends the mutation of model at seq with header failed with
// cause.
func failedStatus(model, op string, header nats.Header, seq uint64, cause error) *teatreev1.RequestStatus {
	return outcome.Failed(model, requestID(model, header, seq), op, seq, time.Now(), cause)
}

// requestID is the request id of a mutation of model with header at seq.
func requestID(model string, header nats.Header, seq uint64) string {
	id, err := subject.RequestFromMsgID(model, header.Get(subject.HeaderMsgID))
	if err != nil {
		return subject.SeqRequestID(seq)
	}
	return id
}

var errNoNode = errors.New("no live node can serve the model")

// errNodesFull: live nodes can serve the model, but none has a free slot
// or a model it could close now. The request waits for a slot rather than
// failing: unavailable means that no live node can serve the model at all.
var errNodesFull = errors.New("every node that can serve the model is full; waiting for a slot")

// place grants model's lease to the live node with the most free slots
// among those that have every capability the model needs. When every such
// node is full, it asks them in turn to close a settled model and places
// the model on the first that did.
func (d *Dispatcher) place(ctx context.Context, spec *teatreev1.ModelSpec) error {
	node := d.pick(spec.GetCapabilities())
	if node == "" {
		node = d.evict(ctx, spec.GetCapabilities())
	}
	if node == "" && d.capable(spec.GetCapabilities()) {
		return errNodesFull
	}
	if node == "" {
		return errNoNode
	}
	_, _, err := catalog.Grant(ctx, d.deps.Owners, spec.GetId(), node)
	if errors.Is(err, catalog.ErrLeaseHeld) {
		return d.heldBy(ctx, spec.GetId())
	}
	if err == nil {
		d.took(node)
		d.deps.Log.InfoContext(ctx, "placed model", "model", spec.GetId(), "node", node)
	}
	return err
}

// took counts a slot of node as taken until its next heartbeat says how
// many are free: placements between two heartbeats must not fill more
// slots than the node has.
func (d *Dispatcher) took(node string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ws, ok := d.workers[node]; ok && ws.w.GetFreeSlots() > 0 {
		w := proto.CloneOf(ws.w)
		w.FreeSlots--
		d.workers[node] = workerSeen{w: w, at: ws.at}
	}
}

// capable reports whether a live node has every capability in needs,
// whether or not it has a free slot.
func (d *Dispatcher) capable(needs []string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, ws := range d.workers {
		if time.Since(ws.at) <= d.cfg.WorkerTTL && ws.w.GetSlots() > 0 && covers(ws.w.GetCapabilities(), needs) {
			return true
		}
	}
	return false
}

func (d *Dispatcher) pick(needs []string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	best, bestFree := "", int32(0)
	for id, ws := range d.workers {
		if time.Since(ws.at) > d.cfg.WorkerTTL || ws.w.GetFreeSlots() <= bestFree || !covers(ws.w.GetCapabilities(), needs) {
			continue
		}
		best, bestFree = id, ws.w.GetFreeSlots()
	}
	return best
}

// evictTimeout bounds one node's answer to an eviction request.
const evictTimeout = 15 * time.Second

// evict asks the live full nodes that could serve a model with needs,
// those with the most slots first, to close their least recently used
// settled model, and returns the first that did ("" when none could).
// The node closes it as an idle model and releases its lease, so the
// slot is free when it answers.
func (d *Dispatcher) evict(ctx context.Context, needs []string) string {
	d.mu.Lock()
	var nodes []*teatreev1.Worker
	for _, ws := range d.workers {
		if time.Since(ws.at) <= d.cfg.WorkerTTL && ws.w.GetSlots() > 0 && covers(ws.w.GetCapabilities(), needs) {
			nodes = append(nodes, ws.w)
		}
	}
	d.mu.Unlock()
	slices.SortFunc(nodes, func(a, b *teatreev1.Worker) int { return int(b.GetSlots() - a.GetSlots()) })
	for _, w := range nodes {
		rctx, cancel := context.WithTimeout(ctx, evictTimeout)
		reply, err := d.deps.JS.Conn().RequestWithContext(rctx, d.cfg.Names.NodeEvict(w.GetNode()), nil)
		cancel()
		if err != nil {
			d.deps.Log.WarnContext(ctx, "ask a node to close a model", "node", w.GetNode(), "err", err)
			continue
		}
		if len(reply.Data) > 0 {
			d.deps.Log.InfoContext(ctx, "node closed a model to free a slot", "node", w.GetNode(), "closed", string(reply.Data))
			return w.GetNode()
		}
	}
	return ""
}

func covers(have, needs []string) bool {
	for _, n := range needs {
		found := false
		for _, h := range have {
			found = found || h == n
		}
		if !found {
			return false
		}
	}
	return true
}

// reject ends a mutation that no model will apply (no such model, a bad
// subject) with a failed outcome of epoch 0: no writer ever holds it.
func (d *Dispatcher) reject(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, model, op string, cause error) error {
	if model == "" {
		d.deps.Log.WarnContext(ctx, "drop mutation on a malformed subject", "subject", msg.Subject(), "seq", meta.Sequence.Stream)
		return nil
	}
	seq := meta.Sequence.Stream
	ev := &teatreev1.Outcomes{Model: model, Statuses: []*teatreev1.RequestStatus{failedStatus(model, op, msg.Headers(), seq, cause)}}
	return d.publish(ctx, d.cfg.Names.Evt(model, subject.EventOutcomes), subject.RejectMsgID(model, seq, 0), ev)
}

// publish publishes ev on subj with msgID and waits for the stream's ack.
func (d *Dispatcher) publish(ctx context.Context, subj, msgID string, ev *teatreev1.Outcomes) error {
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	out := nats.NewMsg(subj)
	out.Data = data
	out.Header.Set(subject.HeaderMsgID, msgID)
	_, err = d.deps.JS.PublishMsg(ctx, out)
	return err
}

// reconcile places models that have mutations waiting but no live lease:
// their node died after the mutation was dispatched. At start it checks
// every model; later only those whose lease was seen and has gone stale.
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
		for m, at := range d.owners {
			if time.Since(at) >= d.cfg.LeaseTTL {
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
		// A stale lease stays listed until its model is settled, so that
		// the next tick looks at it again; a fresh one is the watcher's.
		d.mu.Lock()
		at, ok := d.owners[m]
		switch {
		case settled && ok && time.Since(at) >= d.cfg.LeaseTTL:
			delete(d.owners, m)
		case !settled && !ok:
			d.owners[m] = time.Time{}
		}
		d.mu.Unlock()
	}
}

// reconcileModel places model if it has mutations waiting and no live
// lease. It reports whether the model is settled: placed, or with nothing
// to place.
func (d *Dispatcher) reconcileModel(ctx context.Context, model string) (bool, error) {
	if d.hasOwner(model) {
		return true, nil
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
	// The server removes an expired lease a little after its TTL; until
	// it has, a grant fails, so look again at the next tick.
	if l, _, err := catalog.GetLease(ctx, d.deps.Owners, model); err != nil || l != nil {
		return false, err
	}
	err = d.place(ctx, spec)
	if errors.Is(err, errNoNode) || errors.Is(err, errNodesFull) {
		return false, nil // a node may join, or a slot free up, before the next tick
	}
	return err == nil, err
}
