// Package authcallout is `teatree serve auth`: a NATS auth callout
// service that gives the connections of an external NATS server or
// cluster the same subject permissions as the embedded server of `up
// --auth` gives its users. nats-server sends it each new connection's
// credentials; it authenticates them with the policy (a user and password,
// or an nkey that signed the server's nonce) and answers with a user JWT
// that places the connection in the teatree account with its principal's
// auth.NATSPermissions over the catalog in force. See docs/security.md.
package authcallout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/auth/catalogwatch"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Subject is where nats-server sends authorization requests, in the
// account of auth_callout.account.
const Subject = "$SYS.REQ.USER.AUTH"

// queue is the queue group of the subscription, so that any number of
// callouts may run and each request is answered once.
const queue = "teatree-auth"

// DefaultAccount is the account the users are placed in.
const DefaultAccount = "TEATREE"

// Config configures the callout.
type Config struct {
	Names subject.Names
	// Issuer is the account nkey that signs the responses and the user
	// JWTs; its public key is auth_callout.issuer.
	Issuer nkeys.KeyPair
	// Account is the account the users are placed in: the one that holds
	// teatree's streams and buckets (default DefaultAccount).
	Account string
	// XKey, if set, is the curve key whose public key is
	// auth_callout.xkey: requests come sealed to it, and responses go
	// back sealed.
	XKey nkeys.KeyPair
	// UserTTL, if positive, is how long a user JWT holds: nats-server
	// then closes the connection, the client reconnects, and gets the
	// permissions of the catalog and policy in force.
	UserTTL time.Duration
}

// WithDefaults fills in what is unset.
func (c Config) WithDefaults() Config {
	if c.Account == "" {
		c.Account = DefaultAccount
	}
	if c.Names == (subject.Names{}) {
		c.Names = subject.Default()
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Issuer == nil {
		errs = append(errs, errors.New("an issuer is needed: the account nkey seed (SA...) of auth_callout.issuer (teatree auth issuer makes one)"))
	} else if pub, err := c.Issuer.PublicKey(); err != nil || !nkeys.IsValidPublicAccountKey(pub) {
		errs = append(errs, errors.New("the issuer must be an account nkey seed (SA...), as teatree auth issuer makes"))
	}
	if c.XKey != nil {
		if pub, err := c.XKey.PublicKey(); err != nil || !nkeys.IsValidPublicCurveKey(pub) {
			errs = append(errs, errors.New("the xkey must be a curve key seed (SX...), as teatree auth issuer --xkey-out makes"))
		}
	}
	if c.UserTTL < 0 {
		errs = append(errs, errors.New("the user JWT's lifetime must not be negative (0: no expiry)"))
	}
	return errors.Join(errs...)
}

// Policies gives the policy in force (an auth.Holder, which SIGHUP
// reloads).
type Policies interface{ Policy() *auth.Policy }

// Deps are what the callout works with.
type Deps struct {
	// NC is the callout's connection, as one of auth_callout.auth_users
	// of the account of auth_callout.account.
	NC *nats.Conn
	// JS is NC's JetStream, to read tt_models and tt_functions.
	JS     jetstream.JetStream
	Policy Policies
	Log    *slog.Logger
}

// Service answers authorization requests.
type Service struct {
	cfg     Config
	deps    Deps
	catalog atomic.Pointer[auth.Catalog]
}

// New checks cfg and makes the service.
func New(cfg Config, deps Deps) (*Service, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Service{cfg: cfg, deps: deps}, nil
}

// Run waits for teatree's tt_models and tt_functions, follows the catalog
// in them, and answers requests until ctx ends; ready is called once it
// answers.
func (s *Service) Run(ctx context.Context, ready func()) error {
	models, functions, err := s.buckets(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	follow, err := catalogwatch.Start(ctx, s.cfg.Names, models, functions, func(cat auth.Catalog) {
		s.catalog.Store(&cat)
		s.deps.Log.InfoContext(ctx, "catalog changed: new connections get its permissions", "models", len(cat.Models), "routes", len(cat.Routes))
	})
	if err != nil {
		return err
	}
	// Requests are answered several at once (checking a password takes
	// bcrypt's time): a burst of connections, such as a cluster's clients
	// after a restart, would otherwise outwait the server's auth timeout.
	pool := newAnswerers(runtime.GOMAXPROCS(0))
	defer pool.stop()
	sub, err := s.deps.NC.QueueSubscribe(Subject, queue, func(msg *nats.Msg) { pool.do(func() { s.handle(msg) }) })
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", Subject, err)
	}
	defer sub.Unsubscribe()
	if err := s.deps.NC.Flush(); err != nil {
		return fmt.Errorf("subscribe to %s: %w", Subject, err)
	}
	ready()
	return follow()
}

// buckets waits until teatree's services have made tt_models and
// tt_functions: the callout does not make them, their replicas are the
// services' to set.
func (s *Service) buckets(ctx context.Context) (models, functions jetstream.KeyValue, err error) {
	n := s.cfg.Names
	warned := false
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		models, err = s.deps.JS.KeyValue(actx, n.ModelsBucket())
		if err == nil {
			functions, err = s.deps.JS.KeyValue(actx, n.FunctionsBucket())
		}
		cancel()
		if err == nil {
			return models, functions, nil
		}
		if !warned {
			s.deps.Log.WarnContext(ctx, "waiting for teatree's buckets (start teatree's services; the callout's user must be in their account)",
				"buckets", []string{n.ModelsBucket(), n.FunctionsBucket()}, "err", err)
			warned = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// answerers run up to n answers at once; while all n run, do waits, and
// so does the subscription that calls it.
type answerers struct {
	slots   chan struct{}
	mu      sync.Mutex
	stopped bool
	running sync.WaitGroup
}

func newAnswerers(n int) *answerers { return &answerers{slots: make(chan struct{}, n)} }

// do runs f once a slot is free, unless stop was called.
func (a *answerers) do(f func()) {
	a.slots <- struct{}{}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stopped {
		<-a.slots
		return
	}
	a.running.Go(func() {
		defer func() { <-a.slots }()
		f()
	})
}

// stop lets no more answers start, and waits for those running.
func (a *answerers) stop() {
	a.mu.Lock()
	a.stopped = true
	a.mu.Unlock()
	a.running.Wait()
}
