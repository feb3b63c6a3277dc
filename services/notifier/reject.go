package notifier

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A request no node could take in time is rejected by the dispatcher under
// a lease epoch of its own, and finished here, in its model's lane: record
// the rejection in the catalog (so every later holder skips the request),
// notify it, delete it from TT_MUT, forget the rejection. Each step can be
// done again, so an event delivered again after a crash between any two
// of them finishes the job. Whoever holds the model under a newer epoch
// applies or announces the request itself.

// finishRejects finishes the rejections of a reject event.
func (n *Notifier) finishRejects(ctx context.Context, ev *teatreev1.Outcomes) error {
	for _, s := range ev.GetStatuses() {
		if err := n.finishReject(ctx, ev, s); err != nil {
			return err
		}
	}
	return nil
}

func (n *Notifier) finishReject(ctx context.Context, ev *teatreev1.Outcomes, s *teatreev1.RequestStatus) error {
	model, seq, epoch := s.GetModel(), s.GetSeq(), ev.GetEpoch()
	log := n.deps.Log.With("model", model, "seq", seq, "epoch", epoch, "request_id", s.GetRequestId())
	m, err := n.statusMsg(s)
	if err != nil {
		return err
	}
	u := ev.GetNotifyUrls()[s.GetRequestId()]
	if err := n.keepWebhook(ctx, model, s.GetRequestId(), u); err != nil {
		return err
	}
	n.markWebhook(m, u)
	if n.deps.Models == nil {
		return n.pub.Publish(ctx, []*nats.Msg{m})
	}
	spec, _, err := catalog.GetModel(ctx, n.deps.Models, model)
	if notFound(err) {
		// Deleted since: nobody will apply the request.
		return n.pub.Publish(ctx, []*nats.Msg{m})
	}
	if err != nil {
		return err
	}
	if spec.GetLeaseEpoch() != epoch {
		log.DebugContext(ctx, "drop a rejection: a holder took the model over and applies the request")
		return nil
	}
	// A rejection recorded already is this job begun before: finish it.
	if !slices.Contains(spec.GetRejectedSeqs(), seq) {
		exists, err := n.exists(ctx, n.cfg.Names.NtfRequest(model, s.GetRequestId()))
		if err != nil {
			return err
		}
		if exists {
			log.DebugContext(ctx, "drop a rejection: the request is notified already")
			return nil
		}
		err = catalog.Reject(ctx, n.deps.Models, model, epoch, seq)
		if errors.Is(err, catalog.ErrStale) {
			log.DebugContext(ctx, "drop a rejection: a holder took the model over and applies the request")
			return nil
		}
		if err != nil {
			return err
		}
	}
	if err := n.pub.Publish(ctx, []*nats.Msg{m}); err != nil {
		return err
	}
	if err := n.deleteMut(ctx, seq); err != nil {
		return fmt.Errorf("delete rejected request %d of %s: %w", seq, model, err)
	}
	err = catalog.Unreject(ctx, n.deps.Models, model, seq)
	if err != nil && !notFound(err) {
		return fmt.Errorf("forget rejected request %d of %s: %w", seq, model, err)
	}
	return nil
}

// deleteMut deletes the message at seq from TT_MUT; a message gone already
// is fine. JetStream's refusal to delete a missing message does not keep
// its error code, so absence is checked by reading.
func (n *Notifier) deleteMut(ctx context.Context, seq uint64) error {
	err := n.mut.DeleteMsg(ctx, seq)
	if err == nil {
		return nil
	}
	if _, gerr := n.mut.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
		return nil
	}
	return err
}
