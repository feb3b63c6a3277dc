package natsboot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Backoff of Retry: the first wait, and the longest.
const (
	RetryFirstWait = 250 * time.Millisecond
	RetryMaxWait   = 5 * time.Second
	// AttemptTimeout bounds one attempt: requests that no meta leader
	// answers yet time out and are tried again.
	AttemptTimeout = 30 * time.Second
)

// SetupRetry runs Setup until it succeeds, fails for good, or ctx ends. A
// cluster that is still electing its leaders, or whose servers are still
// joining, is waited for with backoff: services may start in any order
// and at the same moment as the servers.
func SetupRetry(ctx context.Context, js jetstream.JetStream, cfg Config, log *slog.Logger) error {
	return Retry(ctx, log, "set up streams and buckets", func(ctx context.Context) error {
		return Setup(ctx, js, cfg)
	})
}

// Retry runs attempt, each time with AttemptTimeout, until it succeeds,
// returns an error that waiting cannot cure (see Transient), or ctx ends.
// Between attempts it waits RetryFirstWait, doubling up to RetryMaxWait
// while attempts fail the same way; a new failure, such as a later stream
// timing out after the previous one was made, starts again from
// RetryFirstWait. It logs each failure with its cause.
func Retry(ctx context.Context, log *slog.Logger, what string, attempt func(ctx context.Context) error) error {
	wait := RetryFirstWait
	last := ""
	for n := 1; ; n++ {
		actx, cancel := context.WithTimeout(ctx, AttemptTimeout)
		err := attempt(actx)
		cancel()
		if err == nil {
			if n > 1 {
				log.InfoContext(ctx, what+": done", "attempts", n)
			}
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: stopped after %d attempts: %w", what, n, err)
		}
		if !Transient(err) {
			return fmt.Errorf("%s: %w (not retried: waiting for the cluster cannot cure this; fix the configuration, or the stream or bucket that differs)", what, err)
		}
		if err.Error() != last {
			wait, last = RetryFirstWait, err.Error()
		}
		log.WarnContext(ctx, what+": NATS not ready, retrying", "attempt", n, "retry_in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: stopped after %d attempts: %w", what, n, err)
		case <-t.C:
		}
		wait = min(2*wait, RetryMaxWait)
	}
}

// transientCodes are the JetStream API errors of a cluster that is
// electing leaders, or whose servers are joining or restarting.
var transientCodes = map[jetstream.ErrorCode]bool{
	10004: true, // incomplete results
	10005: true, // no suitable peers for placement: not all servers joined yet
	10007: true, // JetStream cluster not assigned to this server
	10008: true, // JetStream system temporarily unavailable
	10009: true, // JetStream cluster can not handle request: no meta leader
	10023: true, // insufficient resources: peers have not reported theirs yet
	10039: true, // JetStream not enabled for account: not yet, at start
	10041: true, // raft error
	10076: true, // JetStream not enabled: not yet, at start
	10118: true, // stream is offline
	10194: true, // stream is offline, with a reason
	10202: true, // cluster member change in progress
	10226: true, // stream reconfiguration in progress
}

// Transient reports whether err may go away by waiting: timeouts, no
// responders, and the JetStream errors of a cluster still electing its
// leaders or gathering its peers (any 503 or 429, and those above). Any
// other error, such as a configuration the server rejects, a stream whose
// settings cannot be updated to ours, or replicas > 1 on a single server,
// is permanent.
func Transient(err error) bool {
	switch {
	case errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders),
		errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrConnectionReconnecting),
		errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount):
		return true
	}
	var jsErr jetstream.JetStreamError
	if errors.As(err, &jsErr) && jsErr.APIError() != nil {
		api := jsErr.APIError()
		return api.Code == 503 || api.Code == 429 || transientCodes[api.ErrorCode]
	}
	return false
}
