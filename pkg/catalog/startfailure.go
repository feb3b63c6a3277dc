package catalog

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A start failure is kept in the model's own catalog entry rather than in
// a bucket of its own: the dispatcher reads the spec before every
// placement anyway, the gateway shows it with the spec, a deleted model
// takes it along, and the compare-and-set that fences writers orders it
// with the takeovers (a record from an older epoch than the model's is
// dropped, so a node that gave up late cannot mark a model failing that a
// newer holder runs).

// RecordStartFailure records that node, holding the model under epoch,
// gave it up after attempts failed starts since since, the last with
// cause; throughSeq is TT_MUT's last sequence now. It adds to a record
// of other nodes' failures since the model last started.
func RecordStartFailure(ctx context.Context, kv jetstream.KeyValue, model, node string, epoch uint64, since time.Time, attempts int, cause error, throughSeq uint64) error {
	_, _, err := update(ctx, kv, model, func(s *teatreev1.ModelSpec) error {
		if s.GetLeaseEpoch() > epoch {
			return fmt.Errorf("record a start failure of %s at epoch %d (now %d): %w", model, epoch, s.GetLeaseEpoch(), ErrStale)
		}
		f := s.GetStartFailure()
		if f == nil {
			f = &teatreev1.StartFailure{Since: since.UTC().Format(time.RFC3339Nano)}
		}
		f.Node, f.Message = node, cause.Error()
		f.Attempts += int32(attempts)
		if !slices.Contains(f.Nodes, node) {
			f.Nodes = append(f.Nodes, node)
		}
		f.ThroughSeq = max(f.GetThroughSeq(), throughSeq)
		s.StartFailure = f
		return nil
	})
	return err
}

// ClearStartFailure forgets a model's start failure: a db-manager of it
// has started.
func ClearStartFailure(ctx context.Context, kv jetstream.KeyValue, model string) error {
	_, _, err := update(ctx, kv, model, func(s *teatreev1.ModelSpec) error {
		s.StartFailure = nil
		return nil
	})
	return err
}
