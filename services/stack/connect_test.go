package stack_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/services/stack"
)

// A process started before any NATS server answers waits for one, saying
// so, instead of exiting; stopped meanwhile, it stops cleanly.
func TestServeWaitsForNATSAndStopsCleanly(t *testing.T) {
	t.Parallel()
	seed := natstest.HangUp(t) // a seed that never answers
	logs := &natstest.LogBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- stack.Run(ctx, stack.Config{
			Services: []string{stack.Dispatcher},
			NATSURL:  "nats://" + seed,
			Data:     t.TempDir(),
			Log:      slog.New(slog.NewTextHandler(logs, nil)),
		})
	}()
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "no nats server reachable yet")
	}, time.Minute, 10*time.Millisecond, "logs:\n%s", logs)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err, "logs:\n%s", logs)
	case <-time.After(time.Minute):
		t.Fatalf("Run did not return within a minute of its context ending; logs:\n%s", logs)
	}
}

func TestNATSSeedsAreChecked(t *testing.T) {
	t.Parallel()
	cfg := stack.Config{Services: []string{stack.Node}, Data: t.TempDir(), NATSURL: "nats://a:4222,,10.0.0.2:4222"}
	err := cfg.Validate()
	require.ErrorContains(t, err, "an empty entry")
	require.ErrorContains(t, err, `nats URL "10.0.0.2:4222"`)
}
