package natsboot

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// InternalUser is the NATS user teatree's own services in the `up`
// process connect as; it may do everything.
const InternalUser = "teatree-internal"

// Access is who may connect to a secured embedded server, and what each
// may do: a user per principal with NATS credentials, with its
// auth.NATSPermissions as allow-lists (everything else is denied), and the
// internal user.
type Access struct {
	Users []*server.User
	NKeys []*server.NkeyUser
}

// PolicyAccess builds the users of the policy's principals over the
// catalog, and the internal user with internalPassword.
func PolicyAccess(p *auth.Policy, n subject.Names, cat auth.Catalog, internalPassword string) (Access, error) {
	a := Access{Users: []*server.User{{Username: InternalUser, Password: internalPassword}}}
	for _, pr := range p.Principals {
		if pr.NATS == nil {
			continue
		}
		if pr.NATS.User == InternalUser {
			return Access{}, fmt.Errorf("principal %s: nats user %s is teatree's own", pr.Name, InternalUser)
		}
		perms := pr.NATSPermissions(n, cat)
		sp := &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: perms.Publish},
			Subscribe: &server.SubjectPermission{Allow: perms.Subscribe},
		}
		if pr.NATS.NKey != "" {
			a.NKeys = append(a.NKeys, &server.NkeyUser{Nkey: pr.NATS.NKey, Permissions: sp})
			continue
		}
		// nats-server takes a bcrypt hash for the password and compares
		// the client's password with it; the policy marks its hashes.
		hash := strings.TrimPrefix(pr.NATS.PasswordHash, "bcrypt:")
		a.Users = append(a.Users, &server.User{Username: pr.NATS.User, Password: hash, Permissions: sp})
	}
	return a, nil
}

// InternalPassword makes the internal user's password: random, made at
// each start, kept in memory only.
func InternalPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("internal nats password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func (a Access) apply(o *server.Options) {
	o.Users, o.Nkeys = a.Users, a.NKeys
}

// SecuredServer is an embedded server whose users follow the policy.
type SecuredServer struct {
	*server.Server

	mu   sync.Mutex
	opts *server.Options
}

// StartSecuredServer is StartServer with users: only they may connect.
func StartSecuredServer(cfg ServerConfig, a Access) (*SecuredServer, error) {
	s, opts, err := startServer(cfg, a.apply)
	if err != nil {
		return nil, err
	}
	return &SecuredServer{Server: s, opts: opts}, nil
}

// SetAccess puts new users in force. nats-server checks every connection
// again: one whose user is gone is closed, the others get their user's new
// permissions at once.
func (s *SecuredServer) SetAccess(a Access) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.opts.Clone()
	a.apply(o)
	if err := s.ReloadOptions(o); err != nil {
		return fmt.Errorf("reload nats users: %w", err)
	}
	s.opts = o
	return nil
}
