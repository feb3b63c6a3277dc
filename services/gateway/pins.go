package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// pinTarget resolves the model and version of a pin request.
func (g *Gateway) pinTarget(ctx context.Context, r *http.Request) (string, uint64, error) {
	if g.deps.Pins == nil {
		return "", 0, apierr.New(apierr.Unavailable, "this gateway keeps no pins")
	}
	model := r.PathValue("model")
	if err := subject.ValidateModel(model); err != nil {
		return "", 0, err
	}
	v, err := g.version(ctx, model, r.PathValue("version"))
	return model, v, err
}

// postPin answers POST /v1/models/{model}/snapshots/{version}/pins: the
// version (a number or latest) is kept from garbage collection while the
// pin lives.
func (g *Gateway) postPin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model, v, err := g.pinTarget(ctx, r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if _, _, err := g.manifest(ctx, model, v); err != nil {
		g.writeError(w, r, apierr.Errorf(apierr.NotFound, "version %d of model %s no longer exists", v, model))
		return
	}
	id, err := catalog.Pin(ctx, g.deps.Pins, model, v)
	if err != nil {
		g.writeError(w, r, wrapNATS("pin", err))
		return
	}
	st, err := g.deps.Pins.Status(ctx)
	if err != nil {
		g.writeError(w, r, wrapNATS("pin", err))
		return
	}
	g.writeMessage(w, r, http.StatusCreated, &teatreev1.VersionPin{Model: model, Version: v, PinId: id, TtlMs: st.TTL().Milliseconds()})
}

// putPin renews a pin; not_found once it has expired.
func (g *Gateway) putPin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model, v, err := g.pinTarget(ctx, r)
	if err == nil {
		err = catalog.RenewPin(ctx, g.deps.Pins, model, v, r.PathValue("pin"))
	}
	if errors.Is(err, catalog.ErrLeaseLost) {
		err = apierr.Errorf(apierr.NotFound, "pin %s has expired: pin the version again", r.PathValue("pin"))
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// deletePin removes a pin.
func (g *Gateway) deletePin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model, v, err := g.pinTarget(ctx, r)
	if err == nil {
		err = catalog.Unpin(ctx, g.deps.Pins, model, v, r.PathValue("pin"))
	}
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
