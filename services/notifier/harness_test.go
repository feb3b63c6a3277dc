package notifier_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/notifier"
)

// harness is a notifier running on an embedded JetStream server.
type harness struct {
	t       *testing.T
	js      jetstream.JetStream
	names   subject.Names
	ntf     jetstream.Stream
	results *results.Store
	// models and deliveries are tt_models and tt_deliveries.
	models, deliveries jetstream.KeyValue
	// mut is TT_MUT and dead TT_DEAD.
	mut, dead jetstream.Stream
	// calls is tt_calls, call TT_CALL and blobs the blob store that call
	// results are written to.
	calls jetstream.KeyValue
	call  jetstream.Stream
	blobs *blob.Dir
	nc    *nats.Conn
	log   *natstest.LogBuffer
	// stop stops the notifier that start ran.
	stop func()
}

func start(t *testing.T) *harness {
	t.Helper()
	return startWith(t, notifier.WebhookConfig{})
}

// startWith starts a notifier that delivers webhooks with hooks.
func startWith(t *testing.T, hooks notifier.WebhookConfig) *harness {
	t.Helper()
	return startConfig(t, notifier.Config{Webhooks: hooks})
}

// startConfig starts a notifier configured with cfg.
func startConfig(t *testing.T, cfg notifier.Config) *harness {
	t.Helper()
	ctx := context.Background()
	env := natstest.Start(t)
	h := &harness{t: t, js: env.JS, names: subject.Default(), mut: env.Mut, nc: env.Conn, log: &natstest.LogBuffer{}}
	var err error
	h.ntf, err = env.JS.Stream(ctx, h.names.NtfStream())
	require.NoError(t, err)

	resKV, err := env.JS.KeyValue(ctx, h.names.ResultsBucket())
	require.NoError(t, err)
	h.results = results.New(resKV)
	h.models, err = env.JS.KeyValue(ctx, h.names.ModelsBucket())
	require.NoError(t, err)
	h.deliveries, err = env.JS.KeyValue(ctx, h.names.DeliveriesBucket())
	require.NoError(t, err)
	h.dead, err = env.JS.Stream(ctx, h.names.DeadStream())
	require.NoError(t, err)
	h.calls, err = env.JS.KeyValue(ctx, h.names.CallsBucket())
	require.NoError(t, err)
	h.call, err = env.JS.Stream(ctx, h.names.CallStream())
	require.NoError(t, err)
	h.blobs, err = blob.NewDir(t.TempDir())
	require.NoError(t, err)
	cfg.Names = h.names
	h.stop = h.run(cfg)
	return h
}

// run starts a notifier configured with cfg; stop, or t.Cleanup, stops
// it.
func (h *harness) run(cfg notifier.Config) (stop func()) {
	t := h.t
	ctx := context.Background()
	n := notifier.New(cfg, notifier.Deps{JS: h.js, Results: h.results,
		Models: h.models, Deliveries: h.deliveries, Calls: h.calls, Blobs: h.blobs, Log: slog.New(slog.NewTextHandler(h.log, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	rctx, cancel := context.WithCancel(ctx)
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- n.Run(rctx, func() { close(ready) }) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("notifier did not stop")
		}
	})
	t.Cleanup(stop)
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("notifier stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("notifier not ready")
	}
	return stop
}

// publishEvent publishes a raw event with msgID ("" for none) and returns
// its sequence in TT_EVT.
func (h *harness) publishEvent(subj string, data []byte, msgID string) uint64 {
	h.t.Helper()
	m := nats.NewMsg(subj)
	m.Data = data
	if msgID != "" {
		m.Header.Set(subject.HeaderMsgID, msgID)
	}
	ack, err := h.js.PublishMsg(context.Background(), m)
	require.NoError(h.t, err)
	require.False(h.t, ack.Duplicate)
	return ack.Sequence
}

// publishOutcomes publishes an outcomes event for ev's model.
func (h *harness) publishOutcomes(ev *teatreev1.Outcomes, msgID string) uint64 {
	h.t.Helper()
	b, err := proto.Marshal(ev)
	require.NoError(h.t, err)
	return h.publishEvent(h.names.Evt(ev.GetModel(), subject.EventOutcomes), b, msgID)
}

// processed waits until the notifier has acknowledged every event up to
// seq.
func (h *harness) processed(seq uint64) {
	h.t.Helper()
	natstest.WaitAcked(h.t, h.js, h.names.EvtStream(), "notifier", seq, "event %d not processed", seq)
}

// notification waits for the newest notification on subj.
func (h *harness) notification(subj string) *jetstream.RawStreamMsg {
	h.t.Helper()
	var raw *jetstream.RawStreamMsg
	require.Eventually(h.t, func() bool {
		var err error
		raw, err = h.ntf.GetLastMsgForSubject(context.Background(), subj)
		return err == nil
	}, 15*time.Second, 20*time.Millisecond, "no notification on %s", subj)
	return raw
}

// count returns how many notifications TT_NTF holds on subjects matching
// filter.
func (h *harness) count(filter string) uint64 {
	h.t.Helper()
	info, err := h.ntf.Info(context.Background(), jetstream.WithSubjectFilter(filter))
	require.NoError(h.t, err)
	var n uint64
	for _, c := range info.State.Subjects {
		n += c
	}
	return n
}
