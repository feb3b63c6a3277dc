package dbmanager

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
)

// A db-manager is fenced by its model's catalog entry: Run takes the model
// over at its lease epoch before applying anything, and every version it
// publishes is a compare-and-set that checks the epoch is still its own.
// A holder that lost the model (paused, partitioned) keeps applying to its
// own file at worst; nothing it does becomes visible.

// leaseLost is what Run returns once a newer holder has the model: the
// lease is lost, whatever tt_owners says yet. It matches both
// catalog.ErrLeaseLost and catalog.ErrStale.
func leaseLost(model string, epoch uint64, err error) error {
	return fmt.Errorf("model %s at epoch %d: %w: %w", model, epoch, catalog.ErrLeaseLost, err)
}

// takeOver makes the manager's epoch the model's writer epoch and adopts
// the spec as it is then: newer than the one Run was given, with the
// requests a dispatcher rejected meanwhile.
func (m *Manager) takeOver(ctx context.Context) error {
	spec, err := catalog.TakeOver(ctx, m.deps.Models, m.cfg.Model, m.cfg.Epoch, m.cfg.Node)
	if errors.Is(err, catalog.ErrStale) {
		return leaseLost(m.cfg.Model, m.cfg.Epoch, err)
	}
	if err != nil {
		return fmt.Errorf("take over %s: %w", m.cfg.Model, err)
	}
	m.cfg.Spec = spec
	m.rejected = make(map[uint64]bool, len(spec.GetRejectedSeqs()))
	for _, seq := range spec.GetRejectedSeqs() {
		m.rejected[seq] = true
	}
	m.snap.published = spec.GetAppliedSeq()
	return nil
}

// unavailable is the outcome of a request the dispatcher rejected because
// no node could serve the model in time: the client was told so, and it
// must stay true.
func (m *Manager) unavailable() error {
	return apierr.Errorf(apierr.Unavailable, "no live node could serve model %s in time; the request was not applied", m.cfg.Model)
}

// purgeLog deletes the model's mutations up to seq from TT_MUT: every
// version kept holds them, so no restore will replay them again.
func (s *snapshotter) purgeLog(ctx context.Context, seq uint64) error {
	if seq <= s.purged {
		return nil
	}
	names := s.p.names
	stream, err := s.p.js.Stream(ctx, names.MutStream())
	if err != nil {
		return fmt.Errorf("purge log of %s to %d: %w", s.p.model, seq, err)
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(names.MutModel(s.p.model)), jetstream.WithPurgeSequence(seq+1)); err != nil {
		return fmt.Errorf("purge log of %s to %d: %w", s.p.model, seq, err)
	}
	s.purged = seq
	return nil
}
