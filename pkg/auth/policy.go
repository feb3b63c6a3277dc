// Package auth holds teatree's one access policy (`--auth FILE`): the
// principals, their credentials, and what each may do on which models. The
// gateway decides HTTP requests with it, the embedded NATS server turns it
// into per-user subject permissions, and `teatree serve auth` answers a NATS
// auth callout with the same decisions. See docs/security.md.
package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// Role is what a principal may do on a model.
type Role string

// The roles.
const (
	// Admin creates and deletes models, registers functions, moves models
	// and manages pins.
	Admin Role = "admin"
	// Write sends mutations and function calls.
	Write Role = "write"
	// Read runs queries, downloads versions, and reads notifications.
	Read Role = "read"
	// Work serves compute jobs of the grant's capabilities.
	Work Role = "work"
)

var roles = []Role{Admin, Write, Read, Work}

// Policy is a loaded, checked policy file.
type Policy struct {
	Principals []*Principal `json:"principals"`

	byHash map[string]tokenEntry
	byUser map[string]*Principal
	byNKey map[string]*Principal
}

// Principal is one named caller.
type Principal struct {
	// Name names the principal in outcomes and audit records; it is also
	// the last token of the subjects it publishes on NATS, so it is a
	// subject token: letters, digits, '-' and '_'.
	Name string `json:"name"`
	// Tokens are the HTTP bearer tokens, stored as hashes.
	Tokens []Token `json:"tokens,omitempty"`
	// NATS are the principal's NATS credentials.
	NATS *NATSCredentials `json:"nats,omitempty"`
	// Allow lists the grants; a principal may do only what one allows.
	Allow []Grant `json:"allow"`
	// Limits bound what the principal may ask for at once.
	Limits Limits `json:"limits,omitempty"`
}

// Grant gives roles on the models matching any of the globs.
type Grant struct {
	// Models are globs over model ids: '*' matches any run of characters,
	// '?' one character ("sales*", "*").
	Models []string `json:"models"`
	Roles  []Role   `json:"roles"`
	// Capabilities are what a work grant may serve; a work grant needs at
	// least one ("*" for any).
	Capabilities []string `json:"capabilities,omitempty"`
}

// Limits are per principal; zero means no limit.
type Limits struct {
	// Queries is how many queries may run at once.
	Queries int `json:"queries,omitempty"`
	// MutationsPerSecond is the sustained rate of mutations and calls; a
	// burst of as many is allowed.
	MutationsPerSecond float64 `json:"mutations_per_second,omitempty"`
}

// NATSCredentials are a NATS user and password, or an nkey.
type NATSCredentials struct {
	User string `json:"user,omitempty"`
	// PasswordHash is "bcrypt:<hash>" (`teatree auth password` makes one).
	PasswordHash string `json:"password_hash,omitempty"`
	// NKey is the user's public nkey ("U...").
	NKey string `json:"nkey,omitempty"`
}

// ValidPrincipalName reports whether name may name a principal.
func ValidPrincipalName(name string) bool { return subject.ValidatePrincipal(name) == nil }

// Load reads and checks a policy file, YAML or JSON.
func Load(file string) (*Policy, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read policy: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("policy %s: %w", file, err)
	}
	return p, nil
}

// Parse decodes and checks a policy. JSON is YAML, so both go through the
// YAML decoder and then strictly through JSON: an unknown field is an
// error, not a silently ignored rule.
func Parse(data []byte) (*Policy, error) {
	var doc any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	js, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := p.index(); err != nil {
		return nil, err
	}
	return &p, nil
}

// index checks every principal and builds the credential look-ups.
func (p *Policy) index() error {
	p.byHash = map[string]tokenEntry{}
	p.byUser = map[string]*Principal{}
	p.byNKey = map[string]*Principal{}
	names := map[string]bool{}
	var errs []error
	for i, pr := range p.Principals {
		if pr == nil {
			errs = append(errs, fmt.Errorf("principals[%d] is empty", i))
			continue
		}
		if !ValidPrincipalName(pr.Name) {
			errs = append(errs, fmt.Errorf("principals[%d]: name %q must be 1 to 64 letters, digits, '-' or '_'", i, pr.Name))
		}
		if names[pr.Name] {
			errs = append(errs, fmt.Errorf("principal %s is named twice", pr.Name))
		}
		names[pr.Name] = true
		errs = append(errs, p.indexCredentials(pr)...)
		for j, g := range pr.Allow {
			if err := g.check(); err != nil {
				errs = append(errs, fmt.Errorf("principal %s: allow[%d]: %w", pr.Name, j, err))
			}
		}
		if pr.Limits.Queries < 0 || pr.Limits.MutationsPerSecond < 0 {
			errs = append(errs, fmt.Errorf("principal %s: limits must not be negative", pr.Name))
		}
	}
	return errors.Join(errs...)
}

func (p *Policy) indexCredentials(pr *Principal) []error {
	var errs []error
	for j, t := range pr.Tokens {
		if err := t.check(); err != nil {
			errs = append(errs, fmt.Errorf("principal %s: tokens[%d]: %w", pr.Name, j, err))
			continue
		}
		if other, dup := p.byHash[t.Hash]; dup {
			errs = append(errs, fmt.Errorf("principal %s: tokens[%d] is also a token of %s", pr.Name, j, other.principal.Name))
		}
		p.byHash[t.Hash] = tokenEntry{principal: pr, expires: t.Expires}
	}
	if n := pr.NATS; n != nil {
		switch {
		case n.NKey != "" && (n.User != "" || n.PasswordHash != ""):
			errs = append(errs, fmt.Errorf("principal %s: nats takes a user and password_hash, or an nkey, not both", pr.Name))
		case n.NKey != "":
			if !strings.HasPrefix(n.NKey, "U") {
				errs = append(errs, fmt.Errorf("principal %s: nats.nkey must be a user's public nkey (U...)", pr.Name))
			}
			if _, dup := p.byNKey[n.NKey]; dup {
				errs = append(errs, fmt.Errorf("principal %s: nats.nkey is another principal's", pr.Name))
			}
			p.byNKey[n.NKey] = pr
		case n.User == "" || !strings.HasPrefix(n.PasswordHash, bcryptPrefix):
			errs = append(errs, fmt.Errorf("principal %s: nats needs a user and a password_hash \"bcrypt:...\" (teatree auth password), or an nkey", pr.Name))
		default:
			if _, dup := p.byUser[n.User]; dup {
				errs = append(errs, fmt.Errorf("principal %s: nats user %s is another principal's", pr.Name, n.User))
			}
			p.byUser[n.User] = pr
		}
	}
	return errs
}

func (g Grant) check() error {
	if len(g.Models) == 0 {
		return errors.New("models is empty: name model ids or globs (\"*\" for all)")
	}
	for _, m := range g.Models {
		if _, err := path.Match(m, ""); err != nil || m == "" || strings.ContainsAny(m, "[]\\/.") {
			return fmt.Errorf("models: %q is not a glob of model ids ('*' and '?' only)", m)
		}
	}
	if len(g.Roles) == 0 {
		return errors.New("roles is empty: admin, write, read or work")
	}
	for _, r := range g.Roles {
		if !slices.Contains(roles, r) {
			return fmt.Errorf("roles: %q is not admin, write, read or work", r)
		}
	}
	work := slices.Contains(g.Roles, Work)
	switch {
	case work && len(g.Capabilities) == 0:
		return errors.New("a work grant needs capabilities (\"*\" for any)")
	case !work && len(g.Capabilities) > 0:
		return errors.New("capabilities belong to a work grant only")
	case work && !slices.Equal(g.Models, []string{"*"}):
		// A route's jobs of every model go through one consumer, so a
		// worker cannot be kept to some models' jobs.
		return errors.New(`a work grant takes models: ["*"]: a worker serves a route's jobs of every model`)
	}
	return nil
}

// expired reports whether an expiry has passed; a zero one never does.
func expired(t time.Time, now time.Time) bool { return !t.IsZero() && !now.Before(t) }
