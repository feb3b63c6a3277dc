package dbmanager

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A holder that takes a model over applies again, from the log, requests
// that an earlier holder may already have applied and notified. Applying
// is deterministic except for a request's own limits: one that ran past
// its deadline or out of memory before may well fit now. Its client was
// told it failed, and that must stay true, so a request an earlier holder
// notified as failed fails again the same way, without being run.

// notified looks up the terminal notifications of requests of the log up
// to through (the model's last message when this epoch began), that is of
// every request an earlier holder may have seen.
type notified struct {
	ntf     jetstream.Stream
	names   subject.Names
	model   string
	through uint64
}

// recheckConcurrency bounds the look-ups of one batch in flight at once.
const recheckConcurrency = 16

// newNotified returns the look-up for a Run that starts from a file of
// another epoch; nil (nothing to look up) for a restart of the same one or
// for the model's first holder.
func (m *Manager) newNotified(ctx context.Context, fileEpoch uint64) (*notified, error) {
	if fileEpoch == m.cfg.Epoch || !m.hasPredecessor() {
		return nil, nil
	}
	names := m.cfg.Names
	mut, err := m.deps.JS.Stream(ctx, names.MutStream())
	if err != nil {
		return nil, fmt.Errorf("read log: %w", err)
	}
	last, err := mut.GetLastMsgForSubject(ctx, names.MutModel(m.cfg.Model))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the log's last request of %s: %w", m.cfg.Model, err)
	}
	ntf, err := m.deps.JS.Stream(ctx, names.NtfStream())
	if err != nil {
		return nil, fmt.Errorf("read notifications: %w", err)
	}
	return &notified{ntf: ntf, names: names, model: m.cfg.Model, through: last.Sequence}, nil
}

// failures marks the requests of reqs that were notified as failed with
// that failure, so that they end as they were told.
func (n *notified) failures(ctx context.Context, reqs []*request) error {
	if n == nil {
		return nil
	}
	var g errgroup.Group
	g.SetLimit(recheckConcurrency)
	for _, r := range reqs {
		if r.seq > n.through || r.invalid != nil {
			continue
		}
		g.Go(func() error {
			failure, err := n.failure(ctx, r.id)
			if failure != nil {
				r.invalid = failure
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nodeError{err}
	}
	return nil
}

// failure is the error a request was notified as failed with; nil when it
// was not notified, or was notified as applied.
func (n *notified) failure(ctx context.Context, requestID string) (*apierr.Error, error) {
	msg, err := n.ntf.GetLastMsgForSubject(ctx, n.names.NtfRequest(n.model, requestID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up the notification of %s: %w", requestID, err)
	}
	if msg.Header.Get(subject.HeaderStatus) != subject.StatusFailed {
		return nil, nil
	}
	var s teatreev1.RequestStatus
	if err := wire.Unmarshal(msg.Data, &s); err != nil {
		return nil, fmt.Errorf("read the notification of %s: %w", requestID, err)
	}
	return apierr.New(apierr.Code(s.GetError().GetCode()), s.GetError().GetMessage()), nil
}
