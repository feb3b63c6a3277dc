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

// ErrLeaseLost is returned when a holder's lease expired or was taken.
var ErrLeaseLost = errors.New("lease lost")

// Grant gives model's lease to node unless someone holds it. The epoch is
// the KV revision of the grant, so it only grows; the returned revision is
// the one the holder renews from.
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

// Renew extends a lease held since epoch from revision rev, returning the
// new revision; ErrLeaseLost when it is no longer this holder's.
func Renew(ctx context.Context, kv jetstream.KeyValue, model string, lease *teatreev1.Lease, rev uint64) (uint64, error) {
	b, err := wire.Marshal(lease)
	if err != nil {
		return 0, err
	}
	next, err := kv.Update(ctx, model, b, rev)
	if err != nil {
		var apiErr *jetstream.APIError
		if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || errors.Is(err, jetstream.ErrKeyNotFound) {
			return 0, fmt.Errorf("renew lease of %s: %w", model, ErrLeaseLost)
		}
		return 0, fmt.Errorf("renew lease of %s: %w", model, err)
	}
	return next, nil
}

// Release gives up a lease if it is still the holder's.
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
