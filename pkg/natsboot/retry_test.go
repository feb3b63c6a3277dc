package natsboot_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Waiting cannot cure a stream whose settings cannot be updated to
// teatree's, nor a configuration teatree rejects: SetupRetry says so at
// the first attempt instead of retrying until its context ends.
func TestSetupRetryGivesUpOnWhatWaitingCannotCure(t *testing.T) {
	t.Parallel()
	env := natstest.Start(t)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)

	call := subject.Default().CallStream()
	require.NoError(t, env.JS.DeleteStream(ctx, call))
	_, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: call, Subjects: []string{subject.Default().CallAll()}, Retention: jetstream.LimitsPolicy})
	require.NoError(t, err)
	err = natsboot.SetupRetry(ctx, env.JS, natsboot.Config{}, log)
	require.ErrorContains(t, err, "create stream "+call)
	require.ErrorContains(t, err, "not retried")
	require.False(t, natsboot.Transient(err))

	err = natsboot.SetupRetry(ctx, env.JS, natsboot.Config{Replicas: 7}, log)
	require.ErrorContains(t, err, "replicas 7: want 1 to 5")
	require.ErrorContains(t, err, "not retried")
}

func TestTransient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"timeout", fmt.Errorf("create stream TT_MUT: %w", context.DeadlineExceeded), true},
		{"no responders", nats.ErrNoResponders, true},
		{"no suitable peers", &jetstream.APIError{Code: 400, ErrorCode: 10005, Description: "no suitable peers for placement"}, true},
		{"temporarily unavailable", &jetstream.APIError{Code: 503, ErrorCode: 10008}, true},
		{"jetstream not enabled yet", jetstream.ErrJetStreamNotEnabled, true},
		{"other settings", &jetstream.APIError{Code: 400, ErrorCode: 10058, Description: "stream name already in use with a different configuration"}, false},
		{"invalid config", &jetstream.APIError{Code: 500, ErrorCode: 10052}, false},
		{"connection closed", nats.ErrConnectionClosed, false},
		{"bad config", errors.New("replicas 7: want 1 to 5"), false},
	} {
		require.Equal(t, tc.want, natsboot.Transient(tc.err), tc.name)
	}
}

func TestSeedURLs(t *testing.T) {
	t.Parallel()
	urls, err := natsboot.SeedURLs("nats://a:4222, nats://b:4222,tls://c:4222")
	require.NoError(t, err)
	require.Equal(t, []string{"nats://a:4222", "nats://b:4222", "tls://c:4222"}, urls)
	for in, want := range map[string]string{
		"a:4222":                  `nats URL "a:4222": want nats://HOST:PORT`,
		"nats://a:4222,":          "an empty entry",
		"http://a:4222":           `nats URL "http://a:4222": want nats://HOST:PORT`,
		"nats://:4222":            "no host",
		"nats://a:4222,,nats://b": "an empty entry",
	} {
		_, err := natsboot.SeedURLs(in)
		require.ErrorContains(t, err, want, in)
	}
}
