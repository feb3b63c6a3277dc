package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/pkg/worker/workertest"
)

// orders answers every row of orders, with a progress report between.
func orders(ctx context.Context, in *worker.Input) (worker.Output, error) {
	in.Progress(0.5, "halfway")
	in.Progress(0.6, "dropped: too soon after the last")
	rd, err := in.Query(ctx, `SELECT * FROM orders ORDER BY id`)
	if err != nil {
		return worker.Output{}, err
	}
	return worker.Arrow(rd), nil
}

func TestJobRunsAndReports(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	// A long interval so that the second report is dropped however slow
	// the machine.
	e.Start(t, worker.Config{ID: "w-1", ProgressInterval: time.Hour, Handlers: map[string]worker.Handler{"orders": orders}})

	c, err := e.JS.Consumer(context.Background(), workertest.Names.CallStream(), calls.Consumer("orders@go"))
	require.NoError(t, err)
	info := c.CachedInfo()
	require.Equal(t, workertest.Names.CallRoute("orders@go"), info.Config.FilterSubject)
	require.Equal(t, jetstream.AckExplicitPolicy, info.Config.AckPolicy)
	require.Equal(t, 30*time.Second, info.Config.AckWait)
	require.Equal(t, -1, info.Config.MaxDeliver)

	job := e.Job("c1", "orders", nil, 3)
	e.Queue(t, job)
	done := evs.WaitFor(t, "c1", "sales.c1.1.done")
	require.Equal(t, "w-1", done.Worker)
	require.Equal(t, "application/vnd.apache.arrow.stream", done.ContentType)
	require.EqualValues(t, 5, done.Rows)

	var ids []string
	for _, ev := range evs.Of("c1") {
		ids = append(ids, ev.ID)
		require.Equal(t, "sales", ev.Model)
		require.Equal(t, 1, ev.Attempt)
	}
	require.Equal(t, []string{"sales.c1.1.started", "sales.c1.1.progress.1", "sales.c1.1.done"}, ids)
	progress := evs.Of("c1")[1]
	require.InDelta(t, 0.5, progress.Fraction, 1e-9)
	require.Equal(t, "halfway", progress.Message)

	path := strings.TrimPrefix(job.Results[0].URL, "file://")
	rows, cols := workertest.ReadArrow(t, path)
	require.EqualValues(t, 5, rows)
	require.Equal(t, []string{"id", "item", "amount"}, cols)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, st.Size(), done.Bytes)
	require.Eventually(t, func() bool {
		info, err := c.Info(context.Background())
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0
	}, 15*time.Second, 20*time.Millisecond, "the done job is acknowledged")
}

func TestFailedAttemptIsRetried(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	flaky := func(ctx context.Context, in *worker.Input) (worker.Output, error) {
		if in.Attempt == 1 {
			return worker.Output{}, errors.New("flaked")
		}
		var n int64
		if err := in.DB.QueryRowContext(ctx, `SELECT count(*) FROM orders`).Scan(&n); err != nil {
			return worker.Output{}, err
		}
		return worker.JSON([]map[string]any{{"n": n}}), nil
	}
	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{"flaky": flaky}})
	job := e.Job("c2", "flaky", nil, 3)
	e.Queue(t, job)
	failed := evs.WaitFor(t, "c2", "sales.c2.1.failed")
	require.False(t, failed.Final)
	require.Equal(t, &calls.Error{Code: "internal", Message: "flaked"}, failed.Error)
	done := evs.WaitFor(t, "c2", "sales.c2.2.done")
	require.Equal(t, "application/json", done.ContentType)
	body, err := os.ReadFile(strings.TrimPrefix(job.Results[1].URL, "file://"))
	require.NoError(t, err)
	require.JSONEq(t, `[{"n":5}]`, string(body))
	_, err = os.Stat(strings.TrimPrefix(job.Results[0].URL, "file://"))
	require.True(t, os.IsNotExist(err), "a failed attempt writes no result")
}

func TestEventsCarryTheContractsFields(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{
		"starts": func(context.Context, *worker.Input) (worker.Output, error) {
			return worker.Output{}, errors.New("no")
		},
		"zero": func(_ context.Context, in *worker.Input) (worker.Output, error) {
			in.Progress(0, "starting")
			return worker.JSON(nil), nil
		},
	}})
	e.Queue(t, e.Job("f1", "starts", nil, 3))
	e.Queue(t, e.Job("z1", "zero", nil, 3))
	raw := func(msgID string) map[string]any {
		var body map[string]any
		require.Eventually(t, func() bool {
			msg, err := e.Evt.GetLastMsgForSubject(context.Background(), workertest.Names.Evt("sales", "call"))
			if err != nil {
				return false
			}
			// Scan back: the last message may be another call's.
			for seq := msg.Sequence; seq > 0; seq-- {
				m, err := e.Evt.GetMsg(context.Background(), seq)
				if err == nil && m.Header.Get("Nats-Msg-Id") == msgID {
					return json.Unmarshal(m.Data, &body) == nil
				}
			}
			return false
		}, 30*time.Second, 20*time.Millisecond, msgID)
		return body
	}
	failed := raw("sales.f1.1.failed")
	require.Equal(t, false, failed["final"])
	require.Equal(t, map[string]any{"code": "internal", "message": "no"}, failed["error"])
	for _, k := range []string{"event", "model", "call_id", "attempt", "worker"} {
		require.Contains(t, failed, k)
	}
	progress := raw("sales.z1.1.progress.1")
	require.Equal(t, 0.0, progress["fraction"])
	require.Equal(t, "starting", progress["message"])
	started := raw("sales.z1.1.started")
	require.NotContains(t, started, "final")
	require.NotContains(t, started, "fraction")
}
