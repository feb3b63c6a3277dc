package gateway

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/auth"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// rule is what a /v1/ route asks of its caller.
type rule struct {
	// role is needed on the path's {model}. Empty: the handler decides
	// (the model id is in the body, or the answer is filtered).
	role auth.Role
	// anyOf, for a route of no model, is satisfied by any one of these
	// roles on some model.
	anyOf []auth.Role
	// limit is the per-principal limit the route counts against.
	limit limitKind
}

// rules is every /v1/ route's rule, in one place; routes() refuses to
// register a route without one.
var rules = map[string]rule{
	// The new model's id is in the body: createModel checks admin on it.
	"POST /v1/models": {},
	// Lists only the models the caller may read.
	"GET /v1/models":                   {},
	"GET /v1/models/{model}":           {role: auth.Read},
	"DELETE /v1/models/{model}":        {role: auth.Admin},
	"POST /v1/models/{model}/move":     {role: auth.Admin},
	"GET /v1/workers":                  {anyOf: []auth.Role{auth.Admin, auth.Work}},
	"GET /v1/models/{model}/functions": {role: auth.Read},

	"POST /v1/models/{model}/tables/{table}/rows":              {role: auth.Write, limit: limitMutation},
	"POST /v1/models/{model}/sql":                              {role: auth.Write, limit: limitMutation},
	"POST /v1/models/{model}/calls/{function}":                 {role: auth.Write, limit: limitMutation},
	"GET /v1/models/{model}/calls/{call}":                      {role: auth.Read},
	"DELETE /v1/models/{model}/calls/{call}":                   {role: auth.Write},
	"PUT /v1/models/{model}/functions/{name}":                  {role: auth.Admin},
	"GET /v1/models/{model}/functions/{name}":                  {role: auth.Read},
	"DELETE /v1/models/{model}/functions/{name}":               {role: auth.Admin},
	"GET /v1/models/{model}/requests/{request}":                {role: auth.Read},
	"GET /v1/models/{model}/events":                            {role: auth.Read},
	"POST /v1/models/{model}/query":                            {role: auth.Read, limit: limitQuery},
	"GET /v1/models/{model}/query":                             {role: auth.Read, limit: limitQuery},
	"GET /v1/models/{model}/snapshots":                         {role: auth.Read},
	"GET /v1/models/{model}/snapshots/{version}/{file}":        {role: auth.Read},
	"POST /v1/models/{model}/snapshots/{version}/pins":         {role: auth.Admin},
	"PUT /v1/models/{model}/snapshots/{version}/pins/{pin}":    {role: auth.Admin},
	"DELETE /v1/models/{model}/snapshots/{version}/pins/{pin}": {role: auth.Admin},
}

// handle registers the /v1/ route pattern behind its rule and limit.
func (g *Gateway) handle(mux *http.ServeMux, pattern string, h http.HandlerFunc) {
	ru, ok := rules[pattern]
	if !ok {
		panic("gateway: route " + pattern + " has no access rule")
	}
	if g.cfg.Auth == nil {
		mux.HandleFunc(pattern, h)
		return
	}
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		pr := principalFrom(r.Context())
		if err := ru.check(pr, r.PathValue("model")); err != nil {
			g.writeError(w, r, err)
			return
		}
		release, refused := g.limits.take(pr, ru.limit)
		if refused != nil {
			g.writeLimited(w, r, refused)
			return
		}
		defer release()
		h(w, r)
	})
}

// check reports whether pr may use a route of the rule on model.
func (ru rule) check(pr *auth.Principal, model string) error {
	switch {
	case ru.role != "":
		return allowed(pr, ru.role, model)
	case len(ru.anyOf) > 0:
		if slices.ContainsFunc(ru.anyOf, pr.CanAnywhere) {
			return nil
		}
		return apierr.Errorf(apierr.PermissionDenied, "principal %s may not do this: it needs %s on some model", pr.Name, joinRoles(ru.anyOf))
	}
	return nil
}

// allowed reports whether pr holds role on model; a nil principal (no
// policy) may do anything.
func allowed(pr *auth.Principal, role auth.Role, model string) error {
	if pr == nil || pr.Can(role, model) {
		return nil
	}
	return apierr.Errorf(apierr.PermissionDenied, "principal %s may not %s model %s", pr.Name, role, model)
}

// mayRead reports whether the caller of ctx may read model, as listing
// models needs.
func mayRead(ctx context.Context, model string) bool {
	return allowed(principalFrom(ctx), auth.Read, model) == nil
}

// redact removes from spec, freshly decoded for this answer, what only the
// model's admins may see: its webhook URL, a capability to post to.
func redact(ctx context.Context, spec *teatreev1.ModelSpec) {
	if allowed(principalFrom(ctx), auth.Admin, spec.GetId()) != nil {
		spec.WebhookUrl = ""
	}
}

func joinRoles(rs []auth.Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}
