package dbmanager

import (
	"context"
	"errors"
	"slices"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// collect deletes versions older than the newest keep, except those a
// reader has pinned, and the folders of abandoned versions. Then it purges
// the model's log up to the oldest version kept: a restore never needs
// what comes before. Pinned older versions serve readers, not replay, and
// do not hold the purge back.
func (s *snapshotter) collect(ctx context.Context, spec *teatreev1.ModelSpec) error {
	newest := spec.GetVersion()
	keep := uint64(spec.GetSnapshot().GetKeep())
	if keep == 0 {
		keep = DefaultKeep
	}
	dirs, err := s.p.blobs.List(ctx, blob.ModelPrefix(s.p.model))
	if err != nil {
		return err
	}
	var errs []error
	var oldestKept uint64
	for _, d := range dirs {
		v, ok := blob.ParseVersionDir(d)
		switch {
		case !ok:
			continue
		case slices.Contains(spec.GetAbandonedVersions(), v):
			// Never visible; a stale holder may write it again, and the
			// next collection deletes it again.
			errs = append(errs, s.p.blobs.DeleteAll(ctx, blob.VersionPrefix(s.p.model, v)))
			continue
		case v > newest:
			continue // reserved, not yet published
		case v+keep > newest:
			if catalog.VersionVisible(spec, v) && (oldestKept == 0 || v < oldestKept) {
				oldestKept = v
			}
			continue
		}
		if s.p.pins != nil {
			pinned, err := catalog.Pinned(ctx, s.p.pins, s.p.model, v)
			if err != nil || pinned {
				errs = append(errs, err) // a reader has it: collect it later
				continue
			}
		}
		errs = append(errs, s.p.blobs.DeleteAll(ctx, blob.VersionPrefix(s.p.model, v)))
	}
	if oldestKept > 0 {
		errs = append(errs, s.purgeTo(ctx, oldestKept))
	}
	return errors.Join(errs...)
}

// purgeTo purges the log up to the applied sequence of a kept version.
func (s *snapshotter) purgeTo(ctx context.Context, version uint64) error {
	man, err := s.manifest(ctx, version)
	if err != nil {
		return err
	}
	return s.purgeLog(ctx, man.GetAppliedSeq())
}
