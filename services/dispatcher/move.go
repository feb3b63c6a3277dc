package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/reply"
	"github.com/teatree-dev/teatree/pkg/sizeclass"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A move hands a model's lease from its node to another by hand. While it
// is under way (d.moving) placement leaves the model alone: its requests
// wait in TT_MUT. The owner stops the model's db-manager between batches,
// publishes what it applied, and releases the lease; the dispatcher then
// grants the lease to the target, whose db-manager restores the newest
// version and replays the log after it. An owner that does not answer
// within releaseWait has its lease taken back, as a stale one is: the
// target's newer epoch fences off anything the old one still publishes,
// and its replay applies each request once (see docs/design.md).

// releaseWait bounds the owner's answer to a release: stopping between
// batches, then publishing what it applied.
const releaseWait = 30 * time.Second

// serveMoves answers move requests on subject DispatchMove, each beside
// the others; the returned function stops taking them and waits for
// those under way, which end soon once ctx has.
func (d *Dispatcher) serveMoves(ctx context.Context) (stop func(), err error) {
	var wg sync.WaitGroup
	sub, err := d.deps.JS.Conn().QueueSubscribe(d.cfg.Names.DispatchMove(), subject.DispatchQueue, func(msg *nats.Msg) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d.answerMove(ctx, msg)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to moves: %w", err)
	}
	return func() {
		_ = sub.Unsubscribe()
		wg.Wait()
	}, nil
}

// answerMove moves the model msg asks for and answers with the Move, or
// with the error's code in headers and an ErrorReply body.
func (d *Dispatcher) answerMove(ctx context.Context, msg *nats.Msg) {
	var req catalog.MoveRequest
	var mv catalog.Move
	err := json.Unmarshal(msg.Data, &req)
	if err != nil {
		err = apierr.Errorf(apierr.InvalidArgument, "move request: %v", err)
	} else {
		mv, err = d.move(ctx, req.Model, req.To)
	}
	out := nats.NewMsg(msg.Reply)
	if err != nil {
		if code, _ := apierr.From(err); code == apierr.Internal {
			d.deps.Log.ErrorContext(ctx, "move", "model", req.Model, "to", req.To, "err", err)
		}
		out.Header, out.Data = reply.Failure(err)
	} else {
		out.Header.Set(subject.HeaderContentType, subject.ContentJSON)
		out.Data, _ = json.Marshal(mv)
	}
	_ = msg.RespondMsg(out)
}

// move moves model's lease to node to, and returns once to holds it.
func (d *Dispatcher) move(ctx context.Context, model, to string) (catalog.Move, error) {
	mv := catalog.Move{Model: model, To: to}
	if err := subject.ValidateModel(model); err != nil {
		return mv, err
	}
	spec, _, err := catalog.GetModel(ctx, d.deps.Models, model)
	if err != nil {
		return mv, err
	}
	if spec.GetCreatedSeq() == catalog.PendingSeq {
		return mv, apierr.Errorf(apierr.Unavailable, "model %s: creation not finished; try again", model)
	}
	e, err := d.deps.Owners.Get(ctx, model)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return mv, fmt.Errorf("read lease of %s: %w", model, err)
	}
	var ls leaseSeen
	if e != nil {
		ls, _ = seen(e)
	}
	d.mu.Lock()
	holds := d.holdsLocked(ls)
	if holds && ls.node == to && ls.epoch != 0 {
		d.mu.Unlock()
		mv.From, mv.Epoch = to, ls.epoch
		return mv, nil // already there
	}
	if err := d.checkTargetLocked(spec, to); err != nil {
		d.mu.Unlock()
		return mv, err
	}
	if m := d.moving[model]; m != "" {
		d.mu.Unlock()
		return mv, apierr.Errorf(apierr.Unavailable, "model %s is being moved to %s already; try again once that move is done", model, m)
	}
	d.moving[model] = to
	// The slot is the move's from now on, for two moves at once to one
	// node as for placements (see took); the next heartbeat counts again.
	d.tookLocked(to)
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.moving, model)
		d.mu.Unlock()
		// Requests that waited for the move are looked at again at once.
		select {
		case d.released <- model:
		default:
		}
	}()
	if holds && ls.node != RejectNode {
		mv.From = ls.node
		d.release(ctx, model, ls.node, e.Revision())
	}
	epoch, err := d.grantMoved(ctx, model, to)
	if err != nil {
		return mv, err
	}
	mv.Epoch = epoch
	d.deps.Log.InfoContext(ctx, "moved model", "model", model, "from", mv.From, "to", to, "epoch", epoch)
	return mv, nil
}

// checkTargetLocked fails unless node to can take model now: live, with
// the model's capabilities and size class, and a free slot.
func (d *Dispatcher) checkTargetLocked(spec *teatreev1.ModelSpec, to string) error {
	ws, ok := d.workers[to]
	switch {
	case !ok || !d.liveLocked(ws):
		return apierr.Errorf(apierr.NotFound, "node %s: no live node of that id heartbeats (see `teatree serve node --node-id`)", to)
	case !sizeclass.Covers(ws.w.GetCapabilities(), spec.GetCapabilities()):
		return apierr.Errorf(apierr.InvalidArgument, "node %s cannot serve model %s: it has capabilities %v, the model needs %v (a size class at least the one asked for)",
			to, spec.GetId(), ws.w.GetCapabilities(), spec.GetCapabilities())
	case ws.w.GetFreeSlots() <= 0:
		return apierr.Errorf(apierr.ResourceExhausted, "node %s has no free slot (%d slots); move a model off it first, or pick another node", to, ws.w.GetSlots())
	}
	return nil
}

// release asks node to stop model and give its lease (at rev) up, and
// takes the lease back itself if the node does not within releaseWait.
func (d *Dispatcher) release(ctx context.Context, model, node string, rev uint64) {
	rctx, cancel := context.WithTimeout(ctx, releaseWait)
	reply, err := d.deps.JS.Conn().RequestWithContext(rctx, d.cfg.Names.NodeRelease(node), []byte(model))
	cancel()
	switch {
	case err == nil && len(reply.Data) == 0:
		return
	case err == nil:
		err = errors.New(string(reply.Data))
	}
	d.deps.Log.WarnContext(ctx, "node did not release a model being moved; taking its lease back", "model", model, "node", node, "err", err)
	if err := catalog.Release(ctx, d.deps.Owners, model, rev); err != nil {
		// Released meanwhile (late), or rewritten: grantMoved sees which.
		d.deps.Log.InfoContext(ctx, "take back the lease of a model being moved", "model", model, "err", err)
	}
}

// grantMoved grants model's lease to node to. A lease written meanwhile
// (the owner restarted and resumed it, a rejection) is taken back if
// stale; one that still holds fails the move as unavailable.
func (d *Dispatcher) grantMoved(ctx context.Context, model, to string) (uint64, error) {
	epoch, _, err := d.acquire(ctx, model, to)
	if errors.Is(err, catalog.ErrLeaseHeld) {
		l, _, _ := catalog.GetLease(ctx, d.deps.Owners, model)
		return 0, apierr.Errorf(apierr.Unavailable, "model %s: its lease is held by %s again; try the move again", model, l.GetNode())
	}
	if err != nil {
		return 0, fmt.Errorf("grant the lease of %s to %s: %w", model, to, err)
	}
	return epoch, nil
}

// movingTo returns the node model is being moved to, "" when it is not.
func (d *Dispatcher) movingTo(model string) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.moving[model]
}
