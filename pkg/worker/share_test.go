package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/pkg/worker/workertest"
)

// gate is a handler that runs until the test opens it.
func gate(open <-chan struct{}) worker.Handler {
	return func(ctx context.Context, _ *worker.Input) (worker.Output, error) {
		select {
		case <-open:
			return worker.JSON([]map[string]any{{"ok": true}}), nil
		case <-ctx.Done():
			return worker.Output{}, ctx.Err()
		}
	}
}

func TestTwoWorkersShareJobsBySlots(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	open := make(chan struct{})
	defer close(open)
	handlers := map[string]worker.Handler{"gate": gate(open)}
	e.Start(t, worker.Config{ID: "w-1", Slots: 1, Handlers: handlers})
	e.Start(t, worker.Config{ID: "w-2", Slots: 1, Handlers: handlers})
	for _, id := range []string{"c1", "c2", "c3"} {
		e.Queue(t, e.Job(id, "gate", nil, 3))
	}
	// Each worker has one slot: two calls start, one on each, and the
	// third waits for a slot.
	require.Eventually(t, func() bool {
		workers := map[string]int{}
		for _, id := range []string{"c1", "c2", "c3"} {
			for _, ev := range evs.Of(id) {
				if ev.Event.Event == calls.EventStarted {
					workers[ev.Worker]++
				}
			}
		}
		return workers["w-1"] == 1 && workers["w-2"] == 1
	}, 30*time.Second, 20*time.Millisecond)
	c, err := e.JS.Consumer(context.Background(), workertest.Names.CallStream(), calls.Consumer("gate@go"))
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	require.EqualValues(t, 1, info.NumPending, "the third job stays queued while both slots are taken")
	require.EqualValues(t, 2, info.NumAckPending)
}

func TestHeartbeatIsVisibleAndDeletedOnStop(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	open := make(chan struct{})
	_, stop := e.StartStoppable(t, worker.Config{ID: "w-1", Capabilities: []string{"gpu", "go"}, Slots: 2,
		Heartbeat: 50 * time.Millisecond, Handlers: map[string]worker.Handler{"gate": gate(open), "broken": broken}})
	ctx := context.Background()
	read := func() calls.Heartbeat {
		ent, err := e.Compute.Get(ctx, "w-1")
		require.NoError(t, err)
		var hb calls.Heartbeat
		require.NoError(t, json.Unmarshal(ent.Value(), &hb))
		return hb
	}
	hb := read()
	require.Equal(t, "w-1", hb.ID)
	require.Equal(t, []string{"gpu", "go"}, hb.Capabilities)
	require.Equal(t, []string{"broken", "gate"}, hb.Handlers)
	require.Equal(t, 2, hb.Slots)
	require.Equal(t, "go", hb.Lang)
	require.NotEmpty(t, hb.StartedAt)
	require.Empty(t, hb.Running)
	for _, route := range []string{"broken@go", "broken@go+gpu", "broken@gpu", "gate@go", "gate@go+gpu", "gate@gpu"} {
		_, err := e.JS.Consumer(ctx, workertest.Names.CallStream(), calls.Consumer(route))
		require.NoError(t, err, "every route of every set of capabilities is bound: %s", route)
	}

	e.Queue(t, e.Job("c1", "gate", nil, 3))
	evs.WaitFor(t, "c1", "sales.c1.1.started")
	require.Eventually(t, func() bool {
		r := read().Running
		return len(r) == 1 && r[0] == "sales.c1"
	}, 15*time.Second, 20*time.Millisecond, "the running call is advertised")
	close(open)
	evs.WaitFor(t, "c1", "sales.c1.1.done")
	require.Eventually(t, func() bool { return len(read().Running) == 0 }, 15*time.Second, 20*time.Millisecond)

	stop()
	_, err := e.Compute.Get(ctx, "w-1")
	require.True(t, errors.Is(err, jetstream.ErrKeyNotFound), "a stopped worker's heartbeat is deleted: %v", err)
}

func TestStoppingWorkerGivesRunningJobsBack(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	never := make(chan struct{})
	_, stop := e.StartStoppable(t, worker.Config{ID: "w-1", StopGrace: 200 * time.Millisecond,
		Handlers: map[string]worker.Handler{"gate": gate(never)}})
	e.Queue(t, e.Job("c1", "gate", nil, 3))
	evs.WaitFor(t, "c1", "sales.c1.1.started")
	stop()
	failed := evs.WaitFor(t, "c1", "sales.c1.1.failed")
	require.False(t, failed.Final)
	require.Equal(t, "unavailable", failed.Error.Code)

	// Another worker gets it at once, as attempt 2.
	open := make(chan struct{})
	close(open)
	e.Start(t, worker.Config{ID: "w-2", Handlers: map[string]worker.Handler{"gate": gate(open)}})
	done := evs.WaitFor(t, "c1", "sales.c1.2.done")
	require.Equal(t, "w-2", done.Worker)
}
