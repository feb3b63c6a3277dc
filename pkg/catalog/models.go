// Package catalog reads and writes teatree's control state in JetStream KV:
// model specs (tt_models) and model leases (tt_owners).
package catalog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/sizeclass"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// PendingSeq is the created_seq of a model whose creation has not finished:
// no mutation of it is placed or rejected until it has.
const PendingSeq = math.MaxUint64

// DefaultRequestTimeoutMs is limits.request_timeout_ms when a spec sets none.
const DefaultRequestTimeoutMs = 30_000

// DefaultCapabilities are what a model needs when its spec names none.
var DefaultCapabilities = []string{"duckdb"}

// GetModel returns a model's spec and its KV revision; not_found when the
// model does not exist.
func GetModel(ctx context.Context, kv jetstream.KeyValue, model string) (*teatreev1.ModelSpec, uint64, error) {
	e, err := kv.Get(ctx, model)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, apierr.Errorf(apierr.NotFound, "model %s does not exist", model)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read model %s: %w", model, err)
	}
	spec, err := DecodeModel(e.Value())
	return spec, e.Revision(), err
}

// DecodeModel decodes a tt_models value.
func DecodeModel(b []byte) (*teatreev1.ModelSpec, error) {
	spec := &teatreev1.ModelSpec{}
	if err := wire.Unmarshal(b, spec); err != nil {
		return nil, fmt.Errorf("decode model spec: %w", err)
	}
	return spec, nil
}

// ValidateSpec checks a spec from a client and fills in its defaults.
func ValidateSpec(spec *teatreev1.ModelSpec) error {
	if err := subject.ValidateModel(spec.GetId()); err != nil {
		return err
	}
	if len(spec.Capabilities) == 0 {
		spec.Capabilities = slices.Clone(DefaultCapabilities)
	}
	for _, c := range spec.GetCapabilities() {
		if err := subject.ValidateCapability(c); err != nil {
			return err
		}
	}
	if err := sizeclass.Validate(spec.GetCapabilities()); err != nil {
		return err
	}
	if p := spec.GetSnapshot(); p.GetIntervalMs() < 0 || p.GetEveryMutations() < 0 || p.GetKeep() < 0 {
		return apierr.New(apierr.InvalidArgument, "snapshot policy: interval_ms, every_mutations and keep must not be negative")
	}
	if spec.Limits == nil {
		spec.Limits = &teatreev1.ModelLimits{}
	}
	switch t := spec.Limits.GetRequestTimeoutMs(); {
	case t < 0:
		return apierr.New(apierr.InvalidArgument, "limits.request_timeout_ms must not be negative")
	case t == 0:
		spec.Limits.RequestTimeoutMs = DefaultRequestTimeoutMs
	}
	return nil
}

// CreateModel stores a new model. Its created_seq is TT_MUT's last
// sequence read after the spec exists: a mutation published before then
// was rejected as not_found (or will be), and is never applied.
func CreateModel(ctx context.Context, kv jetstream.KeyValue, mut jetstream.Stream, spec *teatreev1.ModelSpec) (*teatreev1.ModelSpec, error) {
	if err := ValidateSpec(spec); err != nil {
		return nil, err
	}
	spec.CreatedAt = time.Now().UTC().Format(time.RFC3339)
	spec.CreatedSeq = PendingSeq
	// What the server keeps about versions and writers starts empty,
	// whatever the client sent.
	spec.Version, spec.AppliedSeq, spec.LeaseEpoch, spec.NextVersion = 0, 0, 0, 0
	spec.Epochs, spec.AbandonedVersions, spec.RejectedSeqs, spec.StartFailure = nil, nil, nil, nil
	b, err := wire.Marshal(spec)
	if err != nil {
		return nil, err
	}
	rev, err := kv.Create(ctx, spec.GetId(), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		existing, erev, gerr := GetModel(ctx, kv, spec.GetId())
		if gerr != nil || existing.GetCreatedSeq() != PendingSeq {
			return nil, apierr.Errorf(apierr.InvalidArgument, "model %s already exists", spec.GetId())
		}
		spec, rev = existing, erev // finish a creation that was cut short
	} else if err != nil {
		return nil, fmt.Errorf("create model %s: %w", spec.GetId(), err)
	}
	info, err := mut.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("create model %s: read stream: %w", spec.GetId(), err)
	}
	spec.CreatedSeq = info.State.LastSeq
	if b, err = wire.Marshal(spec); err != nil {
		return nil, err
	}
	if _, err := kv.Update(ctx, spec.GetId(), b, rev); err != nil {
		return nil, fmt.Errorf("create model %s: %w", spec.GetId(), err)
	}
	return spec, nil
}
