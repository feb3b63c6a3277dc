package catalog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// The catalog entry of a model (tt_models) is the fence of its writers:
// every change a reader trusts is a compare-and-set on it, and each one
// checks that the writer's lease epoch is still the model's. Taking over a
// model bumps the epoch first, so a holder that lost its lease (paused,
// partitioned) can no longer reserve or publish a version.

// Bounds on the catalog's history lists.
const (
	maxEpochs    = 16
	maxAbandoned = 64
)

// ErrStale is returned when the model's epoch is no longer the caller's:
// another holder took the model over.
var ErrStale = errors.New("model taken over by a newer lease epoch")

// update applies f to model's spec with a compare-and-set, reading again
// and retrying when another writer changed the entry in between. f returns
// an error to give up without writing.
func update(ctx context.Context, kv jetstream.KeyValue, model string, f func(*teatreev1.ModelSpec) error) (*teatreev1.ModelSpec, uint64, error) {
	for {
		spec, rev, err := GetModel(ctx, kv, model)
		if err != nil {
			return nil, 0, err
		}
		if err := f(spec); err != nil {
			return nil, 0, err
		}
		b, err := wire.Marshal(spec)
		if err != nil {
			return nil, 0, err
		}
		next, err := kv.Update(ctx, model, b, rev)
		if err == nil {
			return spec, next, nil
		}
		var apiErr *jetstream.APIError
		if !errors.As(err, &apiErr) || apiErr.ErrorCode != jetstream.JSErrCodeStreamWrongLastSequence {
			return nil, 0, fmt.Errorf("update model %s: %w", model, err)
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
	}
}

// TakeOver makes epoch the model's writer epoch before its holder applies
// anything: it records where the epoch starts (the catalog's applied_seq)
// and abandons a version an earlier holder reserved but never published.
// A holder restarted under the same epoch keeps its start. node names the
// holder. ErrStale when a newer epoch already holds the model.
func TakeOver(ctx context.Context, kv jetstream.KeyValue, model string, epoch uint64, node string) (*teatreev1.ModelSpec, error) {
	spec, _, err := update(ctx, kv, model, func(s *teatreev1.ModelSpec) error {
		if s.GetLeaseEpoch() > epoch {
			return fmt.Errorf("take over %s at epoch %d (now %d): %w", model, epoch, s.GetLeaseEpoch(), ErrStale)
		}
		s.LeaseEpoch = epoch
		if n := len(s.Epochs); n == 0 || s.Epochs[n-1].GetEpoch() != epoch {
			s.Epochs = append(s.Epochs, &teatreev1.EpochStart{Epoch: epoch, StartSeq: s.GetAppliedSeq(), Node: node})
			s.Epochs = s.Epochs[max(0, len(s.Epochs)-maxEpochs):]
		}
		for v := s.GetVersion() + 1; v < s.GetNextVersion(); v++ {
			s.AbandonedVersions = append(s.AbandonedVersions, v)
		}
		s.AbandonedVersions = s.AbandonedVersions[max(0, len(s.AbandonedVersions)-maxAbandoned):]
		// An abandoned number is never handed out again: its folder may
		// still be written by the holder that reserved it.
		s.NextVersion = max(s.GetNextVersion(), s.GetVersion()+1)
		return nil
	})
	return spec, err
}

// ReserveVersion reserves the next version number for the holder of epoch:
// no other holder will ever write that version's files.
func ReserveVersion(ctx context.Context, kv jetstream.KeyValue, model string, epoch uint64) (uint64, error) {
	var version uint64
	_, _, err := update(ctx, kv, model, func(s *teatreev1.ModelSpec) error {
		if s.GetLeaseEpoch() != epoch {
			return fmt.Errorf("reserve a version of %s at epoch %d (now %d): %w", model, epoch, s.GetLeaseEpoch(), ErrStale)
		}
		version = max(s.GetNextVersion(), s.GetVersion()+1)
		s.NextVersion = version + 1
		return nil
	})
	return version, err
}

// CommitVersion makes a reserved version the model's newest, holding
// requests up to appliedSeq: the moment a version becomes visible. It fails
// with ErrStale for a holder that lost the model since, and prunes the
// rejected sequences the version covers.
func CommitVersion(ctx context.Context, kv jetstream.KeyValue, model string, epoch, version, appliedSeq uint64) (*teatreev1.ModelSpec, error) {
	spec, _, err := update(ctx, kv, model, func(s *teatreev1.ModelSpec) error {
		if s.GetLeaseEpoch() != epoch {
			return fmt.Errorf("publish version %d of %s at epoch %d (now %d): %w", version, model, epoch, s.GetLeaseEpoch(), ErrStale)
		}
		if version <= s.GetVersion() || appliedSeq < s.GetAppliedSeq() {
			return fmt.Errorf("publish version %d (applied_seq %d) of %s: the catalog is at version %d (applied_seq %d)", version, appliedSeq, model, s.GetVersion(), s.GetAppliedSeq())
		}
		s.Version, s.AppliedSeq = version, appliedSeq
		s.NextVersion = max(s.GetNextVersion(), version+1)
		s.RejectedSeqs = slices.DeleteFunc(s.RejectedSeqs, func(seq uint64) bool { return seq <= appliedSeq })
		return nil
	})
	return spec, err
}

// Reject records that the request at seq ended failed without being
// applied, while epoch (the rejecter's) is still the model's: every later
// holder skips it. ErrStale when a holder took the model over since.
func Reject(ctx context.Context, kv jetstream.KeyValue, model string, epoch, seq uint64) error {
	_, _, err := update(ctx, kv, model, func(s *teatreev1.ModelSpec) error {
		if s.GetLeaseEpoch() != epoch {
			return fmt.Errorf("reject seq %d of %s at epoch %d (now %d): %w", seq, model, epoch, s.GetLeaseEpoch(), ErrStale)
		}
		if !slices.Contains(s.RejectedSeqs, seq) {
			s.RejectedSeqs = append(s.RejectedSeqs, seq)
		}
		return nil
	})
	return err
}

// Unreject forgets a rejected sequence whose message is gone from the log,
// so that the list stays short for a model that no node serves.
func Unreject(ctx context.Context, kv jetstream.KeyValue, model string, seq uint64) error {
	_, _, err := update(ctx, kv, model, func(s *teatreev1.ModelSpec) error {
		s.RejectedSeqs = slices.DeleteFunc(s.RejectedSeqs, func(x uint64) bool { return x == seq })
		return nil
	})
	return err
}

// TrustedThrough returns the last stream sequence whose outcomes a writer
// of epoch may still be trusted for: unlimited (ok false) for the current
// epoch or a newer one, else the start of the first epoch after it. An
// epoch older than the kept history is bounded by the oldest start kept.
func TrustedThrough(spec *teatreev1.ModelSpec, epoch uint64) (seq uint64, limited bool) {
	for _, e := range spec.GetEpochs() {
		if e.GetEpoch() > epoch {
			return e.GetStartSeq(), true
		}
	}
	if epoch < spec.GetLeaseEpoch() {
		return spec.GetAppliedSeq(), true
	}
	return 0, false
}

// VersionVisible reports whether version v of a model is one readers may
// see: published, and not a number an earlier holder reserved and left.
func VersionVisible(spec *teatreev1.ModelSpec, v uint64) bool {
	return v >= 1 && v <= spec.GetVersion() && !slices.Contains(spec.GetAbandonedVersions(), v)
}
