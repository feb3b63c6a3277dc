package authtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Connect connects to the server under test as principal, with its NATS
// credentials and opts, and closes the connection in t.Cleanup.
type Connect func(t *testing.T, principal string, opts ...nats.Option) *nats.Conn

// World is what must exist on the server for the matrix: Own, a model
// matching Glob, and Other, one that does not; Route, the route of a
// compute function registered on Own needing WorkCapability only, and
// OtherRoute, one needing a capability the worker lacks.
type World struct {
	Names             subject.Names
	Own, Other        string
	Route, OtherRoute string
}

// NATSMatrix checks, for each principal, each action on its own model and
// on another: allowed, or refused with a permissions violation.
func NATSMatrix(t *testing.T, connect Connect, w World) {
	n := w.Names
	mut := func(model, principal string) string { return n.MutBy(model, subject.OpSQL, principal) }
	fn := func(model, principal string) string { return n.CallBy(model, principal) }
	type check struct {
		name    string
		action  func(ctx context.Context, nc *nats.Conn, principal string) error
		allowed []string
	}
	writers := []string{Admin, Writer}
	readers := []string{Admin, Writer, Reader}
	checks := []check{
		{"publish a mutation of its own model", pub(func(p string) string { return mut(w.Own, p) }), writers},
		{"publish a mutation of another model", pub(func(p string) string { return mut(w.Other, p) }), nil},
		{"publish a mutation under another principal's name", pub(func(p string) string { return mut(w.Own, other(p)) }), nil},
		{"publish a mutation under no name", pub(func(string) string { return n.Mut(w.Own, "sql") }), nil},
		{"publish a call of its own model", pub(func(p string) string { return fn(w.Own, p) }), writers},
		{"publish a call of another model", pub(func(p string) string { return fn(w.Other, p) }), nil},
		{"JetStream publish of a mutation of its own model", func(ctx context.Context, nc *nats.Conn, p string) error {
			js, err := jetstream.New(nc)
			if err != nil {
				return err
			}
			_, err = js.Publish(ctx, mut(w.Own, p), []byte("{}"))
			return err
		}, writers},
		{"subscribe to its own model's notifications", sub(n.NtfModel(w.Own)), readers},
		{"subscribe to another model's notifications", sub(n.NtfModel(w.Other)), nil},
		{"subscribe to every inbox", sub("_INBOX.>"), nil},
		{"subscribe to another principal's inbox", func(ctx context.Context, nc *nats.Conn, p string) error {
			return sub(auth.InboxPrefix(other(p))+".>")(ctx, nc, p)
		}, nil},
		{"query its own model", query(n.Query(w.Own)), readers},
		{"query another model", query(n.Query(w.Other)), nil},
		{"read its own model's notifications from JetStream", ordered(n, w.Own), readers},
		{"read another model's notifications from JetStream", ordered(n, w.Other), nil},
		{"create the consumer of a route it serves", routeConsumer(n, w.Route), []string{Worker}},
		{"create the consumer of a route it does not serve", routeConsumer(n, w.OtherRoute), nil},
	}
	for _, principal := range []string{Admin, Writer, Reader, Worker} {
		for _, c := range checks {
			t.Run(principal+"/"+c.name, func(t *testing.T) {
				want := "refused"
				for _, a := range c.allowed {
					if a == principal {
						want = "allowed"
					}
				}
				require.Equal(t, want, try(t, connect, principal, c.action))
			})
		}
	}
}

// try runs action on a new connection of principal and says whether the
// server allowed it or refused it with a permissions violation. The
// server answers a PING after it has refused what came before, so a
// refused publish or subscription is known once a flush returns; a
// refused request is known when the violation comes.
func try(t *testing.T, connect Connect, principal string, action func(context.Context, *nats.Conn, string) error) string {
	violations := make(chan error, 16)
	nc := connect(t, principal, nats.CustomInboxPrefix(auth.InboxPrefix(principal)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				select {
				case violations <- err:
				default:
				}
			}
		}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		err := action(ctx, nc, principal)
		if err == nil {
			err = nc.FlushWithContext(ctx)
		}
		done <- err
	}()
	select {
	case err := <-done:
		if errors.Is(nc.LastError(), nats.ErrPermissionViolation) {
			return "refused"
		}
		require.NoError(t, err)
		return "allowed"
	case <-violations:
		cancel()
		<-done
		return "refused"
	}
}

// other is a principal other than p.
func other(p string) string {
	if p == Reader {
		return Writer
	}
	return Reader
}

func pub(subj func(principal string) string) func(context.Context, *nats.Conn, string) error {
	return func(_ context.Context, nc *nats.Conn, p string) error { return nc.Publish(subj(p), []byte("{}")) }
}

func sub(subj string) func(context.Context, *nats.Conn, string) error {
	return func(_ context.Context, nc *nats.Conn, _ string) error {
		_, err := nc.SubscribeSync(subj)
		return err
	}
}

// query asks a query and takes any answer, an error too, as allowed: the
// query service replied.
func query(subj string) func(context.Context, *nats.Conn, string) error {
	return func(ctx context.Context, nc *nats.Conn, _ string) error {
		_, err := nc.RequestWithContext(ctx, subj, []byte(`{"sql": "select 1"}`))
		return err
	}
}

func ordered(n subject.Names, model string) func(context.Context, *nats.Conn, string) error {
	return func(ctx context.Context, nc *nats.Conn, _ string) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.OrderedConsumer(ctx, n.NtfStream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{n.NtfModel(model)}})
		return err
	}
}

// routeConsumer creates a route's consumer as a worker does (pkg/worker).
func routeConsumer(n subject.Names, route string) func(context.Context, *nats.Conn, string) error {
	return func(ctx context.Context, nc *nats.Conn, _ string) error {
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		_, err = js.CreateOrUpdateConsumer(ctx, n.CallStream(), jetstream.ConsumerConfig{
			Durable:       calls.Consumer(route),
			FilterSubject: n.CallRoute(route),
			AckPolicy:     jetstream.AckExplicitPolicy,
			MaxDeliver:    -1,
		})
		if err != nil {
			return fmt.Errorf("create consumer of %s: %w", route, err)
		}
		return nil
	}
}
