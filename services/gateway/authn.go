package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/auth"
)

// principalKey keys the authenticated principal in a request's context.
type principalKey struct{}

// principalFrom returns the principal a request was authenticated as, or
// nil when the gateway runs without a policy (everyone may do anything).
func principalFrom(ctx context.Context) *auth.Principal {
	pr, _ := ctx.Value(principalKey{}).(*auth.Principal)
	return pr
}

// principalName is the name of the request's principal; empty without a
// policy.
func principalName(ctx context.Context) string {
	if pr := principalFrom(ctx); pr != nil {
		return pr.Name
	}
	return ""
}

// authenticate puts the principal of a /v1/ request's bearer token in its
// context, or answers 401 unauthenticated. /healthz and /readyz stay open,
// as load balancers and probes carry no token.
func (g *Gateway) authenticate(next http.Handler) http.Handler {
	if g.cfg.Auth == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") {
			next.ServeHTTP(w, r)
			return
		}
		pr, err := g.principal(r)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="teatree"`)
			g.writeError(w, r, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, pr)))
	})
}

// principal returns the holder of the request's bearer token under the
// policy in force now, so that a token removed from the policy file stops
// working at the next reload.
func (g *Gateway) principal(r *http.Request) (*auth.Principal, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, apierr.New(apierr.Unauthenticated,
			"this gateway needs a token: send Authorization: Bearer <token> (teatree commands take --token or TEATREE_TOKEN)")
	}
	scheme, token, _ := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, apierr.New(apierr.Unauthenticated, "the Authorization header must be Bearer <token>")
	}
	pr, err := g.cfg.Auth.Policy().Authenticate(token, time.Now())
	switch {
	case errors.Is(err, auth.ErrExpired):
		return nil, apierr.New(apierr.Unauthenticated, "the token has expired: ask for a new one (teatree auth token) and add its hash to the policy")
	case err != nil:
		return nil, apierr.New(apierr.Unauthenticated, "the token is not known to this gateway's policy (wrong, or revoked)")
	}
	return pr, nil
}
