package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// maxDefinition bounds a function definition's body.
const maxDefinition = 1 << 20

// functionTarget is what a functions request is about: the tt_functions
// store (unavailable when the gateway was started without it), the path's
// model, which must exist, and the function's name from the path value
// nameKey (none when nameKey is empty).
func (g *Gateway) functionTarget(r *http.Request, nameKey string) (store *function.Store, model, name string, err error) {
	if g.deps.Functions == nil {
		return nil, "", "", apierr.New(apierr.Unavailable, "this gateway has no functions bucket")
	}
	model = r.PathValue("model")
	if _, err := g.spec(r.Context(), model); err != nil {
		return nil, "", "", err
	}
	if nameKey != "" {
		name = r.PathValue(nameKey)
		if err := subject.ValidateTable(name); err != nil {
			return nil, "", "", apierr.Errorf(apierr.InvalidArgument, "function name: %s", message(err))
		}
	}
	return function.NewStore(g.deps.Functions), model, name, nil
}

// putFunction answers PUT /v1/models/{model}/functions/{name}: register or
// replace the function, answering with what was stored.
func (g *Gateway) putFunction(w http.ResponseWriter, r *http.Request) {
	if err := checkJSONType(r.Header.Get("Content-Type")); err != nil {
		g.writeError(w, r, err)
		return
	}
	store, model, name, err := g.functionTarget(r, "name")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDefinition))
	if err != nil {
		g.writeError(w, r, bodyError(err))
		return
	}
	var d function.Definition
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		g.writeError(w, r, apierr.Errorf(apierr.InvalidArgument, "function definition: %v", err))
		return
	}
	d.Model, d.Name, d.UpdatedAt = model, name, time.Now().UTC().Format(time.RFC3339Nano)
	if err := function.Validate(r.Context(), &d); err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := store.Put(r.Context(), &d); err != nil {
		g.writeError(w, r, wrapNATS("store function "+name, err))
		return
	}
	g.writeJSON(w, r, http.StatusOK, &d)
}

// getFunction answers GET /v1/models/{model}/functions/{name}.
func (g *Gateway) getFunction(w http.ResponseWriter, r *http.Request) {
	store, model, name, err := g.functionTarget(r, "name")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	d, err := store.Get(r.Context(), model, name)
	if err != nil {
		g.writeError(w, r, wrapNATS("read function "+name, err))
		return
	}
	g.writeJSON(w, r, http.StatusOK, d)
}

// listFunctions answers GET /v1/models/{model}/functions.
func (g *Gateway) listFunctions(w http.ResponseWriter, r *http.Request) {
	store, model, _, err := g.functionTarget(r, "")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	ds, err := store.List(r.Context(), model)
	if err != nil {
		g.writeError(w, r, wrapNATS("list functions of "+model, err))
		return
	}
	if ds == nil {
		ds = []*function.Definition{}
	}
	g.writeJSON(w, r, http.StatusOK, map[string]any{"functions": ds})
}

// deleteFunction answers DELETE /v1/models/{model}/functions/{name}: 204
// once removed.
func (g *Gateway) deleteFunction(w http.ResponseWriter, r *http.Request) {
	store, model, name, err := g.functionTarget(r, "name")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if err := store.Delete(r.Context(), model, name); err != nil {
		g.writeError(w, r, wrapNATS("delete function "+name, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeJSON answers with v encoded as plain JSON.
func (g *Gateway) writeJSON(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		g.writeError(w, r, fmt.Errorf("encode reply: %w", err))
		return
	}
	writeBody(w, status, "application/json", b)
}

// message is an error's message without its code.
func message(err error) string {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}
