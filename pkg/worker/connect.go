package worker

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/natsboot"
)

// Connect connects a worker to the NATS servers at urls (comma-separated
// seeds) with creds, and keeps reconnecting for as long as it runs. Where
// teatree runs with an access policy, principal is the worker's principal
// and its replies come to the principal's inbox prefix
// (auth.InboxPrefix), the only inbox it may read; empty keeps nats.go's.
func Connect(urls string, creds natsboot.Credentials, principal string, opts ...nats.Option) (*nats.Conn, error) {
	co, err := creds.Options()
	if err != nil {
		return nil, err
	}
	if principal != "" {
		if !auth.ValidPrincipalName(principal) {
			return nil, fmt.Errorf("principal %q: want 1 to 64 letters, digits, '-' or '_'", principal)
		}
		co = append(co, nats.CustomInboxPrefix(auth.InboxPrefix(principal)))
	}
	co = append(co, nats.Name("teatree-worker"),
		nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
	nc, err := nats.Connect(urls, append(co, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats at %s: %w", urls, err)
	}
	return nc, nil
}
