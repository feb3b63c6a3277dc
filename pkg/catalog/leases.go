package catalog

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// ErrLeaseHeld is returned when another holder has the lease.
var ErrLeaseHeld = errors.New("lease held by another node")

// ErrLeaseLost is returned when a holder's lease was released, taken back
// from a holder whose heartbeat had lapsed, or granted to another.
var ErrLeaseLost = errors.New("lease lost")

// Grant gives model's lease to node unless someone holds it. The epoch is
// the KV revision of the grant, so it only grows; the returned revision is
// the one the holder releases it from. A lease is never renewed: it holds
// while its node's heartbeat in tt_workers is younger than the lease TTL,
// and tt_owners has no TTL of its own (see docs/design.md).
func Grant(ctx context.Context, kv jetstream.KeyValue, model, node string) (epoch, rev uint64, err error) {
	b, err := wire.Marshal(&teatreev1.Lease{Node: node})
	if err != nil {
		return 0, 0, err
	}
	epoch, err = kv.Create(ctx, model, b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, 0, ErrLeaseHeld
	}
	if err != nil {
		return 0, 0, fmt.Errorf("grant lease of %s: %w", model, err)
	}
	if b, err = wire.Marshal(&teatreev1.Lease{Node: node, Epoch: epoch}); err != nil {
		return 0, 0, err
	}
	rev, err = kv.Update(ctx, model, b, epoch)
	if err != nil {
		return 0, 0, fmt.Errorf("grant lease of %s: %w", model, err)
	}
	return epoch, rev, nil
}

// Release deletes a lease if it is still at revision rev: a holder gives it
// up, or a dispatcher takes back the lease of a node whose heartbeat lapsed.
func Release(ctx context.Context, kv jetstream.KeyValue, model string, rev uint64) error {
	return kv.Delete(ctx, model, jetstream.LastRevision(rev))
}

// GetLease returns the lease of model and its revision, or nil when nobody
// holds it.
func GetLease(ctx context.Context, kv jetstream.KeyValue, model string) (*teatreev1.Lease, uint64, error) {
	e, err := kv.Get(ctx, model)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read lease of %s: %w", model, err)
	}
	l, err := DecodeLease(e.Value())
	return l, e.Revision(), err
}

// DecodeLease decodes a tt_owners value.
func DecodeLease(b []byte) (*teatreev1.Lease, error) {
	l := &teatreev1.Lease{}
	if err := wire.Unmarshal(b, l); err != nil {
		return nil, fmt.Errorf("decode lease: %w", err)
	}
	return l, nil
}

// Fence returns nil while node holds model's lease at epoch.
func Fence(ctx context.Context, kv jetstream.KeyValue, model, node string, epoch uint64) error {
	l, _, err := GetLease(ctx, kv, model)
	if err != nil {
		return err
	}
	if l == nil || l.GetNode() != node || l.GetEpoch() != epoch {
		return fmt.Errorf("model %s at epoch %d: %w", model, epoch, ErrLeaseLost)
	}
	return nil
}
