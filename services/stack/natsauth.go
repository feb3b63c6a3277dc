package stack

import (
	"context"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/auth/catalogwatch"
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

	// mu orders the rebuilds of the catalog's watch and of reloads; cat
	// is the catalog last seen.
	mu  sync.Mutex
	cat auth.Catalog
}

// startSecured starts the embedded server with the policy's users over an
// empty catalog (a grant naming a model without wildcards holds at once);
// watch fills the catalog in.
func startSecured(cfg natsboot.ServerConfig, holder *auth.Holder, names subject.Names, log *slog.Logger) (*natsAccess, error) {
	password, err := natsboot.InternalPassword()
	if err != nil {
		return nil, err
	}
	a := &natsAccess{holder: holder, names: names, password: password, log: log}
	access, err := natsboot.PolicyAccess(holder.Policy(), names, auth.Catalog{}, password)
	if err != nil {
		return nil, err
	}
	if a.srv, err = natsboot.StartSecuredServer(cfg, access); err != nil {
		return nil, err
	}
	holder.OnReload(func(*auth.Policy) { a.update(nil) })
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
	return catalogwatch.Start(ctx, a.names, models, functions, func(cat auth.Catalog) { a.update(&cat) })
}

// update rebuilds the users from the policy in force and cat, or the
// catalog last seen if cat is nil. A failed rebuild keeps the users in
// force; the next change tries again.
func (a *natsAccess) update(cat *auth.Catalog) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cat != nil {
		a.cat = *cat
	}
	pol := a.holder.Policy()
	access, err := natsboot.PolicyAccess(pol, a.names, a.cat, a.password)
	if err == nil {
		err = a.srv.SetAccess(access)
	}
	if err != nil {
		a.log.Error("nats users not updated", "err", err)
		return
	}
	a.log.Info("nats users updated", "models", len(a.cat.Models), "routes", len(a.cat.Routes), "principals", len(pol.Principals))
}
