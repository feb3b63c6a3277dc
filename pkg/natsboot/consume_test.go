package natsboot_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

// deliveries records what a handler got, by stream sequence.
type deliveries struct {
	mu  sync.Mutex
	got map[uint64]int
}

func (d *deliveries) handle(msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	d.mu.Lock()
	d.got[meta.Sequence.Stream]++
	d.mu.Unlock()
	_ = msg.Ack()
}

// all reports whether sequences 1 to n each came.
func (d *deliveries) all(n uint64) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for seq := uint64(1); seq <= n; seq++ {
		if d.got[seq] == 0 {
			return false
		}
	}
	return true
}

func (d *deliveries) count() map[uint64]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[uint64]int, len(d.got))
	for k, v := range d.got {
		out[k] = v
	}
	return out
}

// consume runs natsboot.Consume until the test ends, and checks then that
// it returned nil.
func consume(t *testing.T, cons jetstream.Consumer, check time.Duration, d *deliveries) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	go func() {
		done <- natsboot.Consume(ctx, cons, natsboot.ConsumeConfig{Check: check, Log: slog.New(slog.DiscardHandler)}, d.handle)
	}()
}

// A reader whose pull requests never reach the server (every pull of the
// first reader is dropped on its way, its own retries after missed
// heartbeats too) would wait forever on a healthy connection; Consume
// sees that the server holds no pull of it and starts a reader whose
// pulls arrive, which gets every message, each once.
func TestConsumeReplacesAReaderWhosePullsAreLost(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := natstest.Start(t)
	_, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "LOST", Subjects: []string{"lost.>"}})
	require.NoError(t, err)
	_, err = env.JS.CreateOrUpdateConsumer(ctx, "LOST", jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)

	// The reader's JetStream API goes through a relay under LOSSY, which
	// drops every pull request whose replies go to the first reader's
	// inbox and forwards the rest to $JS.API.
	var mu sync.Mutex
	lostInbox := ""
	relay, err := env.Conn.Subscribe("LOSSY.>", func(m *nats.Msg) {
		subj := "$JS.API." + strings.TrimPrefix(m.Subject, "LOSSY.")
		if strings.HasPrefix(subj, "$JS.API.CONSUMER.MSG.NEXT.") {
			inbox := m.Reply // a reader's own, for all its pulls
			mu.Lock()
			if lostInbox == "" {
				lostInbox = inbox
			}
			lost := inbox == lostInbox
			mu.Unlock()
			if lost {
				return
			}
		}
		_ = env.Conn.PublishMsg(&nats.Msg{Subject: subj, Reply: m.Reply, Header: m.Header, Data: m.Data})
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = relay.Unsubscribe() })
	require.NoError(t, env.Conn.Flush())
	lossy, err := jetstream.NewWithAPIPrefix(env.Conn, "LOSSY")
	require.NoError(t, err)
	cons, err := lossy.Consumer(ctx, "LOST", "reader")
	require.NoError(t, err)

	d := &deliveries{got: map[uint64]int{}}
	consume(t, cons, 100*time.Millisecond, d)
	for i := range 5 {
		_, err := env.JS.Publish(ctx, fmt.Sprintf("lost.%d", i), nil)
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return d.all(5) }, time.Minute, 20*time.Millisecond,
		"every message reaches a reader whose first pulls were lost")
	mu.Lock()
	require.NotEmpty(t, lostInbox, "the first reader pulled, and lost its pull")
	mu.Unlock()
	for seq, n := range d.count() {
		require.Equal(t, 1, n, "message %d handled once", seq)
	}
}

// Ending ctx stops Consume with nil, once the handler's last call has
// returned.
func TestConsumeStopsWithCtx(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := natstest.Start(t)
	_, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "STOP", Subjects: []string{"stop.>"}})
	require.NoError(t, err)
	cons, err := env.JS.CreateOrUpdateConsumer(ctx, "STOP", jetstream.ConsumerConfig{Durable: "reader", AckPolicy: jetstream.AckExplicitPolicy})
	require.NoError(t, err)
	_, err = env.JS.Publish(ctx, "stop.1", nil)
	require.NoError(t, err)

	cctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	running := false
	started := make(chan struct{})
	var once sync.Once
	done := make(chan error, 1)
	go func() {
		done <- natsboot.Consume(cctx, cons, natsboot.ConsumeConfig{Log: slog.New(slog.DiscardHandler)}, func(msg jetstream.Msg) {
			mu.Lock()
			running = true
			mu.Unlock()
			once.Do(func() { close(started) })
			<-cctx.Done() // a handler that finishes only once ctx ends
			mu.Lock()
			running = false
			mu.Unlock()
		})
	}()
	<-started
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	require.False(t, running, "Consume returned with the handler still running")
	mu.Unlock()
}

// Across consumer leader stepdowns while messages are published, the
// reader keeps a pull request at the new leader and gets every message:
// the few a leader had sent off as it stepped down, which never arrive,
// come back after AckWait.
func TestConsumeAcrossConsumerLeaderStepdowns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, js := natstest.NewCluster(t, 3)
	_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "STEP", Subjects: []string{"step.>"}, Replicas: 3})
	require.NoError(t, err)
	cons, err := js.CreateOrUpdateConsumer(ctx, "STEP", jetstream.ConsumerConfig{Durable: "reader",
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 2 * time.Second})
	require.NoError(t, err)
	d := &deliveries{got: map[uint64]int{}}
	consume(t, cons, time.Second, d)

	n := uint64(0)
	for range 10 {
		for range 3 {
			n++
			_, err := js.Publish(ctx, fmt.Sprintf("step.%d", n), nil)
			require.NoError(t, err)
		}
		// The leader may be elected still; a stepdown that fails is
		// only one fewer.
		_, _ = js.Conn().Request("$JS.API.CONSUMER.LEADER.STEPDOWN.STEP.reader", nil, 5*time.Second)
	}
	require.Eventually(t, func() bool { return d.all(n) }, 2*time.Minute, 50*time.Millisecond,
		"every message arrives across consumer leader changes")
}
