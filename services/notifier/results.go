package notifier

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/reply"
	"github.com/teatree-dev/teatree/pkg/results"
)

// serveResults answers tt.result.<result id>.<page> with the stored page,
// as a micro service in a queue group so every notifier shares the load.
func (n *Notifier) serveResults(ctx context.Context, nc *nats.Conn, store *results.Store) (micro.Service, error) {
	svc, err := micro.AddService(nc, micro.Config{
		Name:        "teatree-results",
		Version:     "1.0.0",
		Description: "pages of stored query results",
		QueueGroup:  "tt-result",
	})
	if err != nil {
		return nil, fmt.Errorf("results service: %w", err)
	}
	err = svc.AddEndpoint("page", micro.HandlerFunc(func(req micro.Request) {
		id, page, ok := n.cfg.Names.ParseResult(req.Subject())
		if !ok {
			reply.Error(req, apierr.Errorf(apierr.InvalidArgument, "subject %q: want %s", req.Subject(), n.cfg.Names.Result("<result id>", 1)))
			return
		}
		meta, body, err := store.Get(ctx, id, page)
		if err != nil {
			reply.Error(req, err)
			return
		}
		_ = req.Respond(body, micro.WithHeaders(micro.Headers(results.Headers(id, meta, page))))
	}), micro.WithEndpointSubject(n.cfg.Names.ResultAll()))
	if err != nil {
		svc.Stop()
		return nil, fmt.Errorf("results endpoint: %w", err)
	}
	return svc, nil
}
