package natsboot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

// A reader that took messages and died holds them until AckWait; the
// reader that takes the consumer over gets them at once, from the ack
// floor on, and a consumer with nothing pending is kept as it is.
func TestTakeConsumerDeliversWhatADeadReaderHeld(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := natstest.Start(t)
	_, err := env.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "TAKE", Subjects: []string{"take.>"}})
	require.NoError(t, err)
	for i := range 5 {
		_, err := env.JS.Publish(ctx, fmt.Sprintf("take.%d", i), nil)
		require.NoError(t, err)
	}
	cfg := jetstream.ConsumerConfig{Durable: "worker", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Hour,
		DeliverPolicy: jetstream.DeliverNewPolicy}
	// DeliverNew: the first consumer starts after the five messages.
	c, err := natsboot.TakeConsumer(ctx, env.JS, "TAKE", cfg)
	require.NoError(t, err)
	for i := 5; i < 10; i++ {
		_, err := env.JS.Publish(ctx, fmt.Sprintf("take.%d", i), nil)
		require.NoError(t, err)
	}

	// The first reader acknowledges seq 6 and 8 and dies holding 7, 9, 10.
	batch, err := c.Fetch(5, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	var got []uint64
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		require.NoError(t, err)
		got = append(got, meta.Sequence.Stream)
		if meta.Sequence.Stream%2 == 0 {
			require.NoError(t, msg.DoubleAck(ctx))
		}
	}
	require.Equal(t, []uint64{6, 7, 8, 9, 10}, got)

	// Taken over: from the ack floor (6) on, at once, though AckWait is an
	// hour; 8, acknowledged past the floor, comes again.
	c, err = natsboot.TakeConsumer(ctx, env.JS, "TAKE", cfg)
	require.NoError(t, err)
	batch, err = c.Fetch(4, jetstream.FetchMaxWait(5*time.Second))
	require.NoError(t, err)
	got = nil
	for msg := range batch.Messages() {
		meta, err := msg.Metadata()
		require.NoError(t, err)
		got = append(got, meta.Sequence.Stream)
		require.NoError(t, msg.DoubleAck(ctx))
	}
	require.Equal(t, []uint64{7, 8, 9, 10}, got)

	// Nothing pending: the consumer is kept, and so where it is.
	c, err = natsboot.TakeConsumer(ctx, env.JS, "TAKE", cfg)
	require.NoError(t, err)
	info, err := c.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(10), info.AckFloor.Stream)
	require.Zero(t, info.NumPending)
}
