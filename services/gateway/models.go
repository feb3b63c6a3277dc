package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// maxSpecBody bounds a model spec: it is a few hundred bytes.
const maxSpecBody = 1 << 20

// createModel answers POST /v1/models with the stored spec.
func (g *Gateway) createModel(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxSpecBody))
	if err != nil {
		g.writeError(w, r, bodyError(err))
		return
	}
	spec := &teatreev1.ModelSpec{}
	if err := wire.Unmarshal(b, spec); err != nil {
		g.writeError(w, r, apierr.Errorf(apierr.InvalidArgument, "model spec: %v", err))
		return
	}
	if err := catalog.ValidateSpec(spec); err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := allowed(principalFrom(r.Context()), auth.Admin, spec.GetId()); err != nil {
		g.writeError(w, r, err)
		return
	}
	mut, err := g.streams.get(r.Context(), g.cfg.Names.MutStream())
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	spec, err = catalog.CreateModel(r.Context(), g.deps.Models, mut, spec)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	g.writeMessage(w, r, http.StatusCreated, spec)
}

// listModels answers GET /v1/models, sorted by id: the models the caller
// may read.
func (g *Gateway) listModels(w http.ResponseWriter, r *http.Request) {
	specs, err := g.allSpecs(r.Context())
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	list := &teatreev1.ModelList{Models: make([]*teatreev1.ModelInfo, 0, len(specs))}
	for _, spec := range specs {
		if !mayRead(r.Context(), spec.GetId()) {
			continue
		}
		info, err := g.modelInfo(r.Context(), spec)
		if err != nil {
			g.writeError(w, r, err)
			return
		}
		list.Models = append(list.Models, info)
	}
	g.writeMessage(w, r, http.StatusOK, list)
}

// getModel answers GET /v1/models/{model}.
func (g *Gateway) getModel(w http.ResponseWriter, r *http.Request) {
	spec, err := g.spec(r.Context(), r.PathValue("model"))
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	info, err := g.modelInfo(r.Context(), spec)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	g.writeMessage(w, r, http.StatusOK, info)
}

// deleteModel answers DELETE /v1/models/{model}: its log, its lease, its
// files and last its spec, so that a delete cut short can be retried.
// Mutations accepted meanwhile stay behind in TT_MUT, where they belong to
// no model: a model created again with the same id starts after them
// (catalog.CreateModel's created_seq).
func (g *Gateway) deleteModel(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model := r.PathValue("model")
	if _, err := g.spec(ctx, model); err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := g.deleteModelState(ctx, model); err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (g *Gateway) deleteModelState(ctx context.Context, model string) error {
	mut, err := g.streams.get(ctx, g.cfg.Names.MutStream())
	if err != nil {
		return err
	}
	if err := mut.Purge(ctx, jetstream.WithPurgeSubject(g.cfg.Names.MutModel(model))); err != nil {
		return wrapNATS("delete model "+model+": purge mutations", err)
	}
	if err := g.deps.Owners.Delete(ctx, model); err != nil {
		return wrapNATS("delete model "+model+": lease", err)
	}
	for _, prefix := range []string{blob.ModelPrefix(model), blob.UploadPrefix(model)} {
		if err := g.deps.Blobs.DeleteAll(ctx, prefix); err != nil {
			return fmt.Errorf("delete model %s: %w", model, err)
		}
	}
	if err := g.deps.Models.Delete(ctx, model); err != nil {
		return wrapNATS("delete model "+model+": spec", err)
	}
	return nil
}

// spec returns the spec of a model id taken from a request.
func (g *Gateway) spec(ctx context.Context, model string) (*teatreev1.ModelSpec, error) {
	if err := subject.ValidateModel(model); err != nil {
		return nil, err
	}
	spec, _, err := catalog.GetModel(ctx, g.deps.Models, model)
	if err != nil {
		return nil, wrapNATS("read model "+model, err) // keeps not_found
	}
	return spec, nil
}

// allSpecs reads every model spec in one pass over the bucket.
func (g *Gateway) allSpecs(ctx context.Context) ([]*teatreev1.ModelSpec, error) {
	watcher, err := g.deps.Models.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, wrapNATS("list models", err)
	}
	defer watcher.Stop()
	byID := map[string]*teatreev1.ModelSpec{}
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-watcher.Updates():
		case <-ctx.Done():
			return nil, fmt.Errorf("list models: %w", ctx.Err())
		}
		if e == nil {
			break // the watcher has delivered every key's current value
		}
		if e.Operation() != jetstream.KeyValuePut {
			delete(byID, e.Key())
			continue
		}
		spec, err := catalog.DecodeModel(e.Value())
		if err != nil {
			return nil, fmt.Errorf("list models: %s: %w", e.Key(), err)
		}
		byID[e.Key()] = spec
	}
	specs := make([]*teatreev1.ModelSpec, 0, len(byID))
	for _, spec := range byID {
		specs = append(specs, spec)
	}
	sort.Slice(specs, func(i, j int) bool { return specs[i].GetId() < specs[j].GetId() })
	return specs, nil
}

// The states of a model in GET /v1/models/{model} (ModelInfo.state).
const (
	stateRunning = "running"
	stateFailing = "failing"
	stateIdle    = "idle"
)

// modelInfo adds to a spec, less what the caller may not see, where the
// model runs, whether it can start, and how far its log is ahead of its
// newest version.
func (g *Gateway) modelInfo(ctx context.Context, spec *teatreev1.ModelSpec) (*teatreev1.ModelInfo, error) {
	redact(ctx, spec)
	info := &teatreev1.ModelInfo{Spec: spec, StartError: spec.GetStartFailure()}
	lease, _, err := catalog.GetLease(ctx, g.deps.Owners, spec.GetId())
	if err != nil {
		return nil, wrapNATS("model "+spec.GetId(), err)
	}
	info.Owner, info.LeaseEpoch = lease.GetNode(), lease.GetEpoch()
	switch {
	case info.StartError != nil:
		info.State = stateFailing
	case lease != nil:
		info.State = stateRunning
	default:
		info.State = stateIdle
	}
	last, err := g.streams.lastMsg(ctx, g.cfg.Names.MutStream(), g.cfg.Names.MutModel(spec.GetId()))
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", spec.GetId(), err)
	}
	if last != nil {
		info.LastSeq = last.Sequence
	}
	if info.LastSeq > spec.GetAppliedSeq() {
		info.Lag = info.LastSeq - spec.GetAppliedSeq()
	}
	return info, nil
}
