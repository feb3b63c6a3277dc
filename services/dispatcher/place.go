package dispatcher

import (
	"context"
	"errors"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/sizeclass"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

var errNoNode = errors.New("no live node can serve the model")

// errNodesFull: live nodes can serve the model, but none has a free slot
// or a model it could close now. The request waits for a slot rather than
// failing: unavailable means that no live node can serve the model at all.
var errNodesFull = errors.New("every node that can serve the model is full; waiting for a slot")

// errStartFailed: the only live nodes that can serve the model (if any)
// are those that gave it up because its db-manager could not start
// (spec.start_failure), and the request was waiting when the last of
// them gave up.
var errStartFailed = errors.New("no node could start the model")

// errMoving: the model is being moved by hand (see move.go); the move
// grants its lease, and its requests wait for it.
var errMoving = errors.New("the model is being moved; waiting for the move")

// place places the model of spec for its request at seq. It passes over
// the nodes that gave the model up because its db-manager could not
// start, while another can take it. Those nodes get a new try only for a
// request published after the failure was recorded: the operator may have
// fixed the cause since, and the request waits one more start bound at
// most. Earlier requests get errStartFailed: a node already waited its
// start bound for them.
func (d *Dispatcher) place(ctx context.Context, spec *teatreev1.ModelSpec, seq uint64) error {
	f := spec.GetStartFailure()
	err := d.placeAvoiding(ctx, spec, f.GetNodes())
	switch {
	case !errors.Is(err, errNoNode) || len(f.GetNodes()) == 0:
		return err
	case seq <= f.GetThroughSeq():
		return errStartFailed
	}
	return d.placeAvoiding(ctx, spec, nil)
}

// placeAvoiding grants model's lease to the node pick chooses among those
// not in avoid; errMoving while the model moves by hand. When every such node is full, it asks them in turn to close a
// settled model and places the model on the first that did.
func (d *Dispatcher) placeAvoiding(ctx context.Context, spec *teatreev1.ModelSpec, avoid []string) error {
	if d.movingTo(spec.GetId()) != "" {
		return errMoving
	}
	node := d.pick(lastHolder(spec), spec.GetCapabilities(), avoid)
	if node != "" {
		return d.grant(ctx, spec, node)
	}
	capable := d.capable(spec.GetCapabilities(), avoid)
	if len(capable) == 0 {
		return errNoNode
	}
	if node = d.evict(ctx, capable); node == "" {
		return errNodesFull
	}
	return d.grant(ctx, spec, node)
}

// grant gives the model's lease to node.
func (d *Dispatcher) grant(ctx context.Context, spec *teatreev1.ModelSpec, node string) error {
	_, _, err := d.acquire(ctx, spec.GetId(), node)
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
	d.tookLocked(node)
}

func (d *Dispatcher) tookLocked(node string) {
	if ws, ok := d.workers[node]; ok && ws.w.GetFreeSlots() > 0 {
		w := proto.CloneOf(ws.w)
		w.FreeSlots--
		d.workers[node] = workerSeen{w: w, at: ws.at}
	}
}

// capable returns the live nodes not in avoid that have every capability
// in needs, whether or not they have a free slot.
func (d *Dispatcher) capable(needs, avoid []string) []*teatreev1.Worker {
	d.mu.Lock()
	defer d.mu.Unlock()
	var nodes []*teatreev1.Worker
	for id, ws := range d.workers {
		if d.liveLocked(ws) && ws.w.GetSlots() > 0 && sizeclass.Covers(ws.w.GetCapabilities(), needs) && !slices.Contains(avoid, id) {
			nodes = append(nodes, ws.w)
		}
	}
	return nodes
}

// pick returns the node a model goes to among the live nodes not in avoid
// that serve it (sizeclass.Covers) and have a free slot ("" when none
// has): the node that held the model last, whose local file is the
// freshest, so that it restores nothing; else the smallest size class
// that fits, so that large nodes stay free for large models; then the
// most free slots.
func (d *Dispatcher) pick(last string, needs, avoid []string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	best, bestRank, bestFree := "", 0, int32(0)
	for id, ws := range d.workers {
		if !d.liveLocked(ws) || ws.w.GetFreeSlots() <= 0 || !sizeclass.Covers(ws.w.GetCapabilities(), needs) || slices.Contains(avoid, id) {
			continue
		}
		if id == last {
			return id
		}
		rank, free := sizeclass.Rank(ws.w.GetCapabilities()), ws.w.GetFreeSlots()
		if best == "" || rank < bestRank || rank == bestRank && free > bestFree {
			best, bestRank, bestFree = id, rank, free
		}
	}
	return best
}

// lastHolder is the node that took the model over last (spec.epochs): it
// has the freshest local file, if any node has one. A rejection's epoch
// names no node that holds a file, so the holder before it counts.
func lastHolder(spec *teatreev1.ModelSpec) string {
	epochs := spec.GetEpochs()
	for i := len(epochs) - 1; i >= 0; i-- {
		if n := epochs[i].GetNode(); n != "" && n != RejectNode {
			return n
		}
	}
	return ""
}

// evictTimeout bounds one node's answer to an eviction request.
const evictTimeout = 15 * time.Second

// evict asks nodes, those with the most slots first, to close their least
// recently used settled model, and returns the first that did ("" when
// none could).
// The node closes it as an idle model and releases its lease, so the
// slot is free when it answers.
func (d *Dispatcher) evict(ctx context.Context, nodes []*teatreev1.Worker) string {
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
