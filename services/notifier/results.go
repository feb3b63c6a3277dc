package notifier

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/reply"
	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// ServeResults answers tt.result.<result id>.<page> with the stored page,
// as a micro service in a queue group so every notifier shares the load.
// It keeps no state of its own, so every replica of the notifier serves
// results, the ones standing by too (Run does not). Stop the service when
// done.
func ServeResults(ctx context.Context, nc *nats.Conn, names subject.Names, store *results.Store) (micro.Service, error) {
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
		id, page, ok := names.ParseResult(req.Subject())
		if !ok {
			reply.Error(req, apierr.Errorf(apierr.InvalidArgument, "subject %q: want %s", req.Subject(), names.Result("<result id>", 1)))
			return
		}
		meta, body, err := store.Get(ctx, id, page)
		if err != nil {
			reply.Error(req, err)
			return
		}
		_ = req.Respond(body, micro.WithHeaders(micro.Headers(results.Headers(id, meta, page))))
	}), micro.WithEndpointSubject(names.ResultAll()))
	if err != nil {
		svc.Stop()
		return nil, fmt.Errorf("results endpoint: %w", err)
	}
	return svc, nil
}
