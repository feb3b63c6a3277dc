package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// natsAccess keeps the users of the embedded server of `up --auth` in
// step with the policy and the catalog: a principal's NATS permissions
// name the models its globs match and the routes its work grants cover,
// so they change when a model is created or deleted, a compute function
// put or deleted, or the policy reloaded.
type natsAccess struct {
	srv      *natsboot.SecuredServer
	holder   *auth.Holder
	names    subject.Names
	password string
	log      *slog.Logger
	reloaded chan struct{}

	// models are the model ids there are; routes the route of each
	// compute function, by its key in tt_functions.
	models map[string]bool
	routes map[string]string
	// last is the catalog and policy the users were last built from.
	last    auth.Catalog
	lastPol *auth.Policy
}

// startSecured starts the embedded server with the policy's users over an
// empty catalog (a grant naming a model without wildcards holds at once);
// follow fills the catalog in.
func startSecured(cfg natsboot.ServerConfig, holder *auth.Holder, names subject.Names, log *slog.Logger) (*natsAccess, error) {
	password, err := natsboot.InternalPassword()
	if err != nil {
		return nil, err
	}
	a := &natsAccess{holder: holder, names: names, password: password, log: log,
		reloaded: make(chan struct{}, 1), models: map[string]bool{}, routes: map[string]string{}}
	pol := holder.Policy()
	access, err := natsboot.PolicyAccess(pol, names, auth.Catalog{}, password)
	if err != nil {
		return nil, err
	}
	if a.srv, err = natsboot.StartSecuredServer(cfg, access); err != nil {
		return nil, err
	}
	a.last, a.lastPol = auth.Catalog{}, pol
	holder.OnReload(func(*auth.Policy) {
		select {
		case a.reloaded <- struct{}{}:
		default:
		}
	})
	return a, nil
}

// credentials are those of the internal user, as which the process's own
// services connect.
func (a *natsAccess) credentials() natsboot.Credentials {
	return natsboot.Credentials{User: natsboot.InternalUser, Password: a.password}
}

// watch reads the catalog, puts the users of it in force, and returns the
// loop that follows it until ctx ends.
func (a *natsAccess) watch(ctx context.Context, models, functions jetstream.KeyValue) (func() error, error) {
	mw, err := models.WatchAll(ctx, jetstream.MetaOnly())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", a.names.ModelsBucket(), err)
	}
	fw, err := functions.WatchAll(ctx)
	if err != nil {
		mw.Stop()
		return nil, fmt.Errorf("watch %s: %w", a.names.FunctionsBucket(), err)
	}
	// Each watcher sends what there is, then nil.
	for _, w := range []jetstream.KeyWatcher{mw, fw} {
		for e := range w.Updates() {
			if e == nil {
				break
			}
			a.note(e, w == mw)
		}
	}
	if err := a.apply(); err != nil {
		mw.Stop()
		fw.Stop()
		return nil, err
	}
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
				a.note(e, true)
			case e, ok = <-fw.Updates():
				a.note(e, false)
			case <-a.reloaded:
			}
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("watch of %s or %s ended", a.names.ModelsBucket(), a.names.FunctionsBucket())
			}
			// A failed reload keeps the users in force; the next change
			// tries again.
			if err := a.apply(); err != nil {
				a.log.ErrorContext(ctx, "nats users not updated", "err", err)
			}
		}
	}, nil
}

// note records a change of tt_models (model) or tt_functions.
func (a *natsAccess) note(e jetstream.KeyValueEntry, model bool) {
	if e == nil {
		return
	}
	gone := e.Operation() != jetstream.KeyValuePut
	switch {
	case model && gone:
		delete(a.models, e.Key())
	case model:
		a.models[e.Key()] = true
	case gone:
		delete(a.routes, e.Key())
	default:
		var d function.Definition
		if json.Unmarshal(e.Value(), &d) != nil || d.Kind != function.KindCompute {
			delete(a.routes, e.Key())
			return
		}
		a.routes[e.Key()] = function.Route(d.Handler, d.Capabilities)
	}
}

// apply rebuilds the users if the catalog or the policy changed.
func (a *natsAccess) apply() error {
	routes := slices.Sorted(maps.Values(a.routes))
	cat := auth.Catalog{Models: slices.Sorted(maps.Keys(a.models)), Routes: slices.Compact(routes)}
	pol := a.holder.Policy()
	if pol == a.lastPol && slices.Equal(cat.Models, a.last.Models) && slices.Equal(cat.Routes, a.last.Routes) {
		return nil
	}
	access, err := natsboot.PolicyAccess(pol, a.names, cat, a.password)
	if err != nil {
		return err
	}
	if err := a.srv.SetAccess(access); err != nil {
		return err
	}
	a.last, a.lastPol = cat, pol
	a.log.Info("nats users updated", "models", len(cat.Models), "routes", len(cat.Routes), "principals", len(pol.Principals))
	return nil
}
