package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Blobs is what the intake of compute calls needs of the snapshot store:
// the manifests, and URLs that workers read and write with.
type Blobs interface {
	Get(ctx context.Context, key string) ([]byte, error)
	blob.URLer
}

// versionFor returns the newest published version of model whose
// applied_seq is at least minSeq (any, for 0). While there is none it asks
// the model's db-manager for one, as a query does, and waits until
// deadline: then deadline_exceeded.
func (d *Dispatcher) versionFor(ctx context.Context, model string, minSeq uint64, deadline time.Time) (*teatreev1.ModelSpec, error) {
	spec, _, err := catalog.GetModel(ctx, d.deps.Models, model)
	if err != nil {
		return nil, err
	}
	holds := func(s *teatreev1.ModelSpec) bool { return s.GetVersion() > 0 && s.GetAppliedSeq() >= minSeq }
	if holds(spec) {
		return spec, nil
	}
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	w, err := d.deps.Models.Watch(wctx, model)
	if err != nil {
		return nil, fmt.Errorf("watch model %s: %w", model, err)
	}
	defer w.Stop()
	ask := func() { _ = d.deps.JS.Conn().Publish(d.cfg.Names.SnapshotNow(model), nil) }
	ask()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			if s, err := catalog.DecodeModel(e.Value()); err == nil && holds(s) {
				return s, nil
			}
		case <-tick.C:
			ask()
		case <-wctx.Done():
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if minSeq > 0 {
				return nil, apierr.Errorf(apierr.DeadlineExceeded, "no version of model %s holds seq %d before the call's deadline", model, minSeq)
			}
			return nil, apierr.Errorf(apierr.DeadlineExceeded, "model %s published no version before the call's deadline", model)
		}
	}
}

// newestVersion is the newest published version of a model a function
// reads: not_found when the model is missing or has none.
func (d *Dispatcher) newestVersion(ctx context.Context, model string) (*teatreev1.ModelSpec, error) {
	spec, _, err := catalog.GetModel(ctx, d.deps.Models, model)
	if err != nil {
		return nil, err
	}
	if spec.GetVersion() == 0 {
		return nil, apierr.Errorf(apierr.NotFound, "model %s, which the function reads, has no published version yet", model)
	}
	return spec, nil
}

// input describes version spec.Version of its model to a worker: the
// files its manifest lists, each with a URL that reads it until ttl
// passes.
func (d *Dispatcher) input(ctx context.Context, spec *teatreev1.ModelSpec, ttl time.Duration) (calls.Version, error) {
	model, v := spec.GetId(), spec.GetVersion()
	key := blob.Key(model, v, blob.ManifestFile)
	raw, err := d.deps.Blobs.Get(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return calls.Version{}, apierr.Errorf(apierr.NotFound, "version %d of model %s no longer exists", v, model)
	}
	if err != nil {
		return calls.Version{}, fmt.Errorf("read manifest of %s v%d: %w", model, v, err)
	}
	m := &teatreev1.Manifest{}
	if err := wire.Unmarshal(raw, m); err != nil {
		return calls.Version{}, fmt.Errorf("decode %s: %w", key, err)
	}
	obj := func(file string) (calls.Object, error) {
		k := blob.Key(model, v, file)
		u, err := d.deps.Blobs.ReadURL(ctx, k, ttl)
		if err != nil {
			return calls.Object{}, fmt.Errorf("url of %s: %w", k, err)
		}
		return calls.Object{URL: u, Key: k}, nil
	}
	out := calls.Version{Model: model, Version: v, AppliedSeq: m.GetAppliedSeq()}
	if out.DuckDB, err = obj(m.GetDuckdb().GetPath()); err != nil {
		return calls.Version{}, err
	}
	for _, t := range m.GetTables() {
		p, err := obj(t.GetParquet().GetPath())
		if err != nil {
			return calls.Version{}, err
		}
		out.Tables = append(out.Tables, calls.Table{Name: t.GetName(), Rows: t.GetRows(), Parquet: p})
	}
	return out, nil
}

// results are where each attempt of a call writes its result, each URL
// valid until ttl passes.
func (d *Dispatcher) results(ctx context.Context, model, callID string, attempts int, ttl time.Duration) ([]calls.Result, error) {
	out := make([]calls.Result, 0, attempts)
	for a := 1; a <= attempts; a++ {
		k := blob.CallResultKey(model, callID, a)
		u, err := d.deps.Blobs.WriteURL(ctx, k, ttl)
		if err != nil {
			return nil, fmt.Errorf("url of %s: %w", k, err)
		}
		out = append(out, calls.Result{Attempt: a, URL: u, Key: k})
	}
	return out, nil
}
