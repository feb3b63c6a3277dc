// Package catalogwatch follows the catalog that a policy's NATS
// permissions are computed over (auth.Catalog): the models of tt_models
// and the routes of the compute functions of tt_functions. The embedded
// server of `up --auth` rebuilds its users from it; the auth callout of
// `teatree serve auth` signs new connections' permissions with it.
package catalogwatch

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Start reads the catalog there is and calls changed with it, then
// returns the loop that calls changed again each time a model is created
// or deleted or a compute function put or deleted, until ctx ends. The
// loop fails if a watch ends before ctx does. changed is called from one
// goroutine at a time, and only with a catalog that differs from the last.
func Start(ctx context.Context, n subject.Names, models, functions jetstream.KeyValue, changed func(auth.Catalog)) (func() error, error) {
	mw, err := models.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", n.ModelsBucket(), err)
	}
	fw, err := functions.WatchAll(ctx)
	if err != nil {
		mw.Stop()
		return nil, fmt.Errorf("watch %s: %w", n.FunctionsBucket(), err)
	}
	c := &catalog{models: map[string]bool{}, routes: map[string]string{}}
	// Each watcher sends what there is, then nil.
	for _, w := range []jetstream.KeyWatcher{mw, fw} {
		for e := range w.Updates() {
			if e == nil {
				break
			}
			c.note(e, w == mw)
		}
	}
	last := c.catalog()
	changed(last)
	return func() error {
		defer mw.Stop()
		defer fw.Stop()
		for {
			var e jetstream.KeyValueEntry
			ok := true
			select {
			case <-ctx.Done():
				return nil
			case e, ok = <-mw.Updates():
				c.note(e, true)
			case e, ok = <-fw.Updates():
				c.note(e, false)
			}
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch of %s or %s ended", n.ModelsBucket(), n.FunctionsBucket())
			}
			if cat := c.catalog(); !slices.Equal(cat.Models, last.Models) || !slices.Equal(cat.Routes, last.Routes) {
				last = cat
				changed(cat)
			}
		}
	}, nil
}

// catalog is what the watches have seen: the model ids there are, and
// the route of each compute function by its key in tt_functions.
type catalog struct {
	models map[string]bool
	routes map[string]string
}

// note records a change of tt_models (model) or tt_functions.
func (c *catalog) note(e jetstream.KeyValueEntry, model bool) {
	if e == nil {
		return
	}
	gone := e.Operation() != jetstream.KeyValuePut
	switch {
	case model && gone:
		delete(c.models, e.Key())
	case model:
		c.models[e.Key()] = true
	case gone:
		delete(c.routes, e.Key())
	default:
		var d function.Definition
		if json.Unmarshal(e.Value(), &d) != nil || d.Kind != function.KindCompute {
			delete(c.routes, e.Key())
			return
		}
		c.routes[e.Key()] = function.Route(d.Handler, d.Capabilities)
	}
}

func (c *catalog) catalog() auth.Catalog {
	routes := slices.Sorted(maps.Values(c.routes))
	return auth.Catalog{Models: slices.Sorted(maps.Keys(c.models)), Routes: slices.Compact(routes)}
}
