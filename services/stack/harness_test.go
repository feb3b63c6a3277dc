package stack_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/tlsconf"
	"github.com/teatree-dev/teatree/services/stack"
)

// running is a stack run in process by a test, and a client of its NATS.
type running struct {
	stack.Ready
	js jetstream.JetStream
	// models is tt_models; mut and ntf are TT_MUT and TT_NTF.
	models   jetstream.KeyValue
	mut, ntf jetstream.Stream
	logs     *natstest.LogBuffer
	// stop stops the stack once (it is also a cleanup of the test).
	stop func()
}

// runStack runs cfg with an embedded NATS server on a free port and logs
// kept for the test, and waits until it is ready.
func runStack(t *testing.T, cfg stack.Config) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &natstest.LogBuffer{}
	ready := make(chan stack.Ready, 1)
	done := make(chan error, 1)
	cfg.Embedded.Addr = "127.0.0.1:0"
	cfg.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg.OnReady = func(r stack.Ready) { ready <- r }
	go func() { done <- stack.Run(ctx, cfg) }()
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-done)
		}
	}
	t.Cleanup(stop)
	r := &running{logs: logs, stop: stop}
	select {
	case r.Ready = <-ready:
	case err := <-done:
		stopped = true
		t.Fatalf("stack stopped: %v\n%s", err, logs)
	case <-time.After(30 * time.Second):
		t.Fatalf("stack not ready:\n%s", logs)
	}
	if cfg.Auth != nil {
		// Only the policy's users may connect; the test connects as one.
		return r
	}
	// The test connects as the services do: with their credentials, or
	// trusting the embedded server's own certificate.
	opts, err := cfg.NATS.Options()
	require.NoError(t, err)
	if cfg.Embedded.TLS != nil {
		opts = append(opts, nats.Secure(tlsconf.Pinned(cfg.Embedded.TLS)))
	}
	nc, err := nats.Connect(r.NATSURL, opts...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	r.js, err = jetstream.New(nc)
	require.NoError(t, err)
	names := subject.Default()
	r.models, err = r.js.KeyValue(ctx, names.ModelsBucket())
	require.NoError(t, err)
	r.mut, err = r.js.Stream(ctx, names.MutStream())
	require.NoError(t, err)
	r.ntf, err = r.js.Stream(ctx, names.NtfStream())
	require.NoError(t, err)
	return r
}
