package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/outcome"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// RejectNode is the node id a dispatcher holds a model's lease under while
// it rejects a request of the model. Node ids follow the model id rule, so
// no node can have it, and no node ever runs such a lease.
const RejectNode = "_dispatcher"

// errRejecting is returned while a dispatcher holds a model to reject one
// of its requests: the message is looked at again once it is released.
var errRejecting = errors.New("a dispatcher holds the model to reject a request")

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

// due reports whether a waiting request of a model, at seq and published
// at published, is to end unavailable now.
type due func(seq uint64, published time.Time) bool

// rejectUnavailable ends a request that no node could take in time (the
// mutation m at seq, with header, and the earlier ones that are due too)
// with a failed outcome, without ever contradicting a node that applies
// it. The dispatcher takes the model as a writer of its own (its lease and epoch),
// so that any earlier holder is fenced off and the outcome is trusted as
// the newest word on the request; it announces the rejection on
// tt.evt.<model>.reject, where the notifier commits it (catalog.Reject),
// notifies and deletes the message; then it lets the model go. A node that
// got the lease first keeps it and applies the request instead.
//
// A dispatcher that dies between the grant and the release leaves its
// lease behind: it holds for the lease TTL after it was written, then any
// dispatcher takes it back (see takeBack); the model waits that long for a
// node, which is no worse than a node dying.
func (d *Dispatcher) rejectUnavailable(ctx context.Context, m subject.Mutation, header nats.Header, seq uint64, isDue due, cause error) error {
	model := m.Model
	epoch, rev, err := d.acquire(ctx, model, RejectNode)
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
			d.deps.Log.WarnContext(ctx, "release the lease of a rejection; it is taken back after the lease ttl", "model", model, "err", err)
		}
	}()
	spec, err := catalog.TakeOver(ctx, d.deps.Models, model, epoch, RejectNode)
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
	statuses, err := d.unservable(ctx, model, max(spec.GetAppliedSeq(), spec.GetCreatedSeq()), seq, isDue, cause)
	if err != nil {
		return err
	}
	statuses = append(statuses, failedStatus(m, header, seq, cause))
	ev := &teatreev1.Outcomes{Model: model, Epoch: epoch, Statuses: statuses}
	if err := d.publish(ctx, d.cfg.Names.Evt(model, subject.EventReject), subject.RejectMsgID(model, seq, epoch), ev); err != nil {
		return fmt.Errorf("reject request %d: %w", seq, err)
	}
	d.mu.Lock()
	d.rejected[model] = time.Now()
	d.mu.Unlock()
	d.deps.Log.InfoContext(ctx, "rejected requests as unavailable", "model", model, "seq", seq, "requests", len(statuses), "epoch", epoch, "cause", cause)
	return nil
}

// maxRejectBatch bounds the earlier requests one rejection names.
const maxRejectBatch = 1000

// unservable returns failed statuses for the requests of model after seq
// from and before seq through that are still in TT_MUT and due, oldest
// first. A rejection names these earlier ones too:
// the notifier drops an event whose epoch is no longer the model's, so
// each rejection takes over from the previous one and must carry what that
// one may not have finished.
func (d *Dispatcher) unservable(ctx context.Context, model string, from, through uint64, isDue due, cause error) ([]*teatreev1.RequestStatus, error) {
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
		// A bad subject got its rejection already; a request not yet due
		// may still find a node.
		if m, ok := d.cfg.Names.ParseMut(msg.Subject()); ok && isDue(seq, meta.Timestamp) {
			statuses = append(statuses, failedStatus(m, msg.Headers(), seq, cause))
		}
		if meta.NumPending == 0 {
			break
		}
	}
	return statuses, nil
}

// failedStatus ends mutation m at seq with header failed with cause.
func failedStatus(m subject.Mutation, header nats.Header, seq uint64, cause error) *teatreev1.RequestStatus {
	s := outcome.Failed(m.Model, requestID(m.Model, header, seq), m.Op, seq, time.Now(), cause)
	s.Principal = m.Principal
	return s
}

// requestID is the request id of a mutation of model with header at seq.
func requestID(model string, header nats.Header, seq uint64) string {
	id, err := subject.RequestFromMsgID(model, header.Get(subject.HeaderMsgID))
	if err != nil {
		return subject.SeqRequestID(seq)
	}
	return id
}

// reject ends a mutation that no model will apply (no such model, a bad
// subject) with a failed outcome of epoch 0: no writer ever holds it.
func (d *Dispatcher) reject(ctx context.Context, msg jetstream.Msg, meta *jetstream.MsgMetadata, m subject.Mutation, cause error) error {
	model := m.Model
	if model == "" {
		d.deps.Log.WarnContext(ctx, "drop mutation on a malformed subject", "subject", msg.Subject(), "seq", meta.Sequence.Stream)
		return nil
	}
	seq := meta.Sequence.Stream
	ev := &teatreev1.Outcomes{Model: model, Statuses: []*teatreev1.RequestStatus{failedStatus(m, msg.Headers(), seq, cause)}}
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
