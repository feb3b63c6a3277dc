package worker_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/pkg/worker/workertest"
)

func broken(context.Context, *worker.Input) (worker.Output, error) {
	return worker.Output{}, errors.New("always broken")
}

func refuses(context.Context, *worker.Input) (worker.Output, error) {
	return worker.Output{}, apierr.New(apierr.InvalidArgument, "no such column")
}

// waits runs until its call is cancelled or its deadline passes.
func waits(ctx context.Context, _ *worker.Input) (worker.Output, error) {
	<-ctx.Done()
	return worker.Output{}, ctx.Err()
}

func TestLastAttemptFailsFinal(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{"broken": broken, "refuses": refuses}})
	e.Queue(t, e.Job("c3", "broken", nil, 2))
	e.Queue(t, e.Job("c4", "refuses", nil, 3))

	first := evs.WaitFor(t, "c3", "sales.c3.1.failed")
	require.False(t, first.Final)
	last := evs.WaitFor(t, "c3", "sales.c3.2.failed")
	require.True(t, last.Final)
	require.Equal(t, &calls.Error{Code: "internal", Message: "always broken"}, last.Error)

	refused := evs.WaitFor(t, "c4", "sales.c4.1.failed")
	require.True(t, refused.Final, "retrying cannot help invalid_argument")
	require.Equal(t, "invalid_argument", refused.Error.Code)

	for _, route := range []string{"broken@go", "refuses@go"} {
		c, err := e.JS.Consumer(context.Background(), workertest.Names.CallStream(), calls.Consumer(route))
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			info, err := c.Info(context.Background())
			return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
		}, 15*time.Second, 20*time.Millisecond, "a final failure terminates the job of %s", route)
	}
}

func TestDeadlinePassedFailsWithoutRunning(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	ran := make(chan struct{}, 1)
	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{
		"never": func(context.Context, *worker.Input) (worker.Output, error) {
			ran <- struct{}{}
			return worker.JSON(nil), nil
		},
		"waits": waits,
	}})
	late := e.Job("c5", "never", nil, 3)
	late.Deadline = time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	e.Queue(t, late)
	failed := evs.WaitFor(t, "c5", "sales.c5.1.failed")
	require.True(t, failed.Final)
	require.Equal(t, "deadline_exceeded", failed.Error.Code)
	require.Len(t, evs.Of("c5"), 1, "no started before a deadline that passed")
	require.Empty(t, ran)

	// A deadline that passes while the handler runs ends it, final.
	short := e.Job("c6", "waits", nil, 3)
	short.Deadline = time.Now().Add(500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
	e.Queue(t, short)
	failed = evs.WaitFor(t, "c6", "sales.c6.1.failed")
	require.True(t, failed.Final)
	require.Equal(t, "deadline_exceeded", failed.Error.Code)
}

func TestJobDeliveredMoreThanMaxAttemptsFailsFinal(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	// A worker that died with the job: the message was delivered once
	// and never settled, here by a consumer of the route taken by hand.
	ctx := context.Background()
	c, err := e.JS.CreateOrUpdateConsumer(ctx, workertest.Names.CallStream(), jetstream.ConsumerConfig{
		Durable: calls.Consumer("broken@go"), FilterSubject: workertest.Names.CallRoute("broken@go"),
		AckPolicy: jetstream.AckExplicitPolicy, AckWait: 30 * time.Second, MaxDeliver: -1,
	})
	require.NoError(t, err)
	e.Queue(t, e.Job("c7", "broken", nil, 1))
	batch, err := c.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	require.NoError(t, err)
	msg := <-batch.Messages()
	require.NotNil(t, msg)
	require.NoError(t, msg.Nak())

	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{"broken": broken}})
	failed := evs.WaitFor(t, "c7", "sales.c7.2.failed")
	require.True(t, failed.Final)
	require.Equal(t, &calls.Error{Code: "internal", Message: "did not finish in 1 attempts"}, failed.Error)
	require.Len(t, evs.Of("c7"), 1, "the handler does not run again")
}

func TestCancelStopsTheCall(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{"waits": waits}})
	e.Queue(t, e.Job("c8", "waits", nil, 3))
	evs.WaitFor(t, "c8", "sales.c8.1.started")
	// The subscription starts before the event: one cancel reaches it.
	require.NoError(t, e.Conn.Publish(workertest.Names.WorkCancel("sales", "c8"), nil))
	failed := evs.WaitFor(t, "c8", "sales.c8.1.failed")
	require.True(t, failed.Final)
	require.Equal(t, "cancelled", failed.Error.Code)
}

func TestPanicFailsTheAttempt(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{
		"panics": func(context.Context, *worker.Input) (worker.Output, error) { panic("oops") },
	}})
	e.Queue(t, e.Job("p1", "panics", nil, 1))
	failed := evs.WaitFor(t, "p1", "sales.p1.1.failed")
	require.True(t, failed.Final)
	require.Equal(t, &calls.Error{Code: "internal", Message: "handler panics panicked: oops"}, failed.Error)
}
