package stack_test

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/client"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/stack"
)

// TestComputeCallThroughTheStack: a compute call published on
// tt.call.fn.<model> becomes a job with URLs of a version that holds the
// call's min_seq, a real db-manager's; the gateway shows the workers and a
// call's record, and cancels a call by a cancelled event.
func TestComputeCallThroughTheStack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st := runStack(t, stack.Config{
		Services: stack.AllServices,
		Boot:     natsboot.Config{LeaseTTL: 2 * time.Second},
		Data:     t.TempDir(),
		HTTPAddr: "127.0.0.1:0",
		Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 2, Memory: 2 << 30, Threads: 1},
	})
	names := subject.Default()
	c := client.New(st.HTTPURL)
	_, err := c.CreateModel(ctx, &teatreev1.ModelSpec{Id: "sales", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 1, EveryMutations: 1000, Keep: 3}})
	require.NoError(t, err)
	res, err := c.Append(ctx, "sales", "orders", strings.NewReader("id,amount\n1,9.5\n"), "text/csv", nil, client.MutateOptions{RequestID: "r1", Wait: true})
	require.NoError(t, err)
	require.Equal(t, subject.StatusApplied, res.Status.GetStatus(), "%v", res.Status)

	fns, err := st.js.KeyValue(ctx, names.FunctionsBucket())
	require.NoError(t, err)
	require.NoError(t, function.NewStore(fns).Put(ctx, &function.Definition{Model: "sales", Name: "describe", Kind: function.KindCompute,
		Capabilities: []string{"go"}, Handler: "describe"}))
	compute, err := st.js.KeyValue(ctx, names.ComputeBucket())
	require.NoError(t, err)
	hb, err := json.Marshal(calls.Heartbeat{ID: "w-1", Capabilities: []string{"go"}, Handlers: []string{"describe"}, Slots: 1, Running: []string{}})
	require.NoError(t, err)
	_, err = compute.Put(ctx, "w-1", hb)
	require.NoError(t, err)

	m := nats.NewMsg(names.Call(subject.CallIntake, "sales"))
	m.Data = []byte(`{"function":"describe","min_seq":` + strconv.FormatUint(res.Status.GetSeq(), 10) + `}`)
	m.Header.Set(subject.HeaderMsgID, "sales.c1")
	_, err = st.js.PublishMsg(ctx, m)
	require.NoError(t, err)

	evt, err := st.js.Stream(ctx, names.EvtStream())
	require.NoError(t, err)
	var ev calls.Event
	require.Eventually(t, func() bool {
		raw, err := evt.GetLastMsgForSubject(ctx, names.Evt("sales", subject.EventCall))
		return err == nil && json.Unmarshal(raw.Data, &ev) == nil
	}, time.Minute, 20*time.Millisecond, "no call event; logs:\n%s", st.logs)
	require.Equal(t, calls.EventQueued, ev.Event, "%+v", ev.Error)
	require.Equal(t, "describe@go", ev.Route)
	require.GreaterOrEqual(t, ev.Job.Input.AppliedSeq, res.Status.GetSeq())
	u, err := url.Parse(ev.Job.Input.DuckDB.URL)
	require.NoError(t, err)
	_, err = os.Stat(u.Path)
	require.NoError(t, err, "the job's model.duckdb")
	require.Len(t, ev.Job.Input.Tables, 1)
	require.Equal(t, "orders", ev.Job.Input.Tables[0].Name)

	ws, err := c.Workers(ctx)
	require.NoError(t, err)
	require.Len(t, ws, 1)
	require.Equal(t, "w-1", ws[0].ID)

	_, err = c.CallRecord(ctx, "sales", "none")
	code, _ := apierr.From(err)
	require.Equal(t, apierr.NotFound, code, "%v", err)
	// The record as the notifier keeps it.
	recs, err := st.js.KeyValue(ctx, names.CallsBucket())
	require.NoError(t, err)
	rec, err := json.Marshal(calls.Record{CallID: "c9", Model: "sales", Function: "describe", State: calls.StateRunning})
	require.NoError(t, err)
	_, err = recs.Put(ctx, "sales.c9", rec)
	require.NoError(t, err)
	got, err := c.CallRecord(ctx, "sales", "c9")
	require.NoError(t, err)
	require.Equal(t, calls.StateRunning, got.State)
	got, err = c.CancelCall(ctx, "sales", "c9")
	require.NoError(t, err)
	require.Equal(t, "c9", got.CallID)
	raw, err := evt.GetLastMsgForSubject(ctx, names.Evt("sales", subject.EventCall))
	require.NoError(t, err)
	require.Equal(t, "sales.c9.cancelled", raw.Header.Get(subject.HeaderMsgID))
}
