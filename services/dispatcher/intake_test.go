package dispatcher_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

// describe is a compute function on sales that reads other too.
func describe() *function.Definition {
	return &function.Definition{Model: "sales", Name: "describe", Kind: function.KindCompute, Capabilities: []string{"py", "go"},
		Handler: "describe", Params: []function.Param{{Name: "table", Type: "VARCHAR", Required: true}, {Name: "n", Type: "INTEGER", Default: 3.0}},
		Reads: []string{"other"}, Output: &function.Output{Table: "stats", Mode: function.ModeReplace}, MaxAttempts: 2}
}

func (h *harness) register(d *function.Definition) {
	h.t.Helper()
	require.NoError(h.t, function.NewStore(h.functions).Put(context.Background(), d))
}

// computeWorker puts a worker's heartbeat into tt_compute, as a worker does.
func (h *harness) computeWorker(id string, handlers []string, capabilities ...string) {
	h.t.Helper()
	b, err := json.Marshal(calls.Heartbeat{ID: id, Capabilities: capabilities, Handlers: handlers, Slots: 1, Running: []string{}})
	require.NoError(h.t, err)
	_, err = h.compute.Put(context.Background(), id, b)
	require.NoError(h.t, err)
}

// publishVersion writes a version's manifest and files into the blob
// store and makes it the model's newest in the catalog, as a db-manager
// publishes one.
func (h *harness) publishVersion(model string, v, appliedSeq uint64) {
	h.t.Helper()
	ctx := context.Background()
	m := &teatreev1.Manifest{Model: model, Version: v, AppliedSeq: appliedSeq,
		Duckdb: &teatreev1.FileRef{Path: blob.DuckDBFile},
		Tables: []*teatreev1.TableManifest{{Name: "orders", Rows: 2, Parquet: &teatreev1.FileRef{Path: blob.ParquetFile("orders")}}}}
	raw, err := wire.Marshal(m)
	require.NoError(h.t, err)
	for file, data := range map[string][]byte{blob.ManifestFile: raw, blob.DuckDBFile: []byte("db"), blob.ParquetFile("orders"): []byte("pq")} {
		_, err := h.blobs.Put(ctx, blob.Key(model, v, file), bytes.NewReader(data))
		require.NoError(h.t, err)
	}
	e, err := h.models.Get(ctx, model)
	require.NoError(h.t, err)
	spec, err := catalog.DecodeModel(e.Value())
	require.NoError(h.t, err)
	spec.Version, spec.AppliedSeq = v, appliedSeq
	b, err := wire.Marshal(spec)
	require.NoError(h.t, err)
	_, err = h.models.Update(ctx, model, b, e.Revision())
	require.NoError(h.t, err)
}

// call publishes a compute call on tt.call.fn.<model> as call id id.
func (h *harness) call(model, id string, c calls.Call) {
	h.t.Helper()
	b, err := json.Marshal(c)
	require.NoError(h.t, err)
	m := nats.NewMsg(h.names.Call(subject.CallIntake, model))
	m.Data = b
	m.Header.Set(subject.HeaderMsgID, subject.MsgID(model, id))
	_, err = h.js.PublishMsg(context.Background(), m)
	require.NoError(h.t, err)
}

// callEvent waits for the event of call id of model with msg id suffix.
func (h *harness) callEvent(model, id, what string) calls.Event {
	h.t.Helper()
	var ev calls.Event
	require.Eventually(h.t, func() bool {
		raw, err := h.evt.GetLastMsgForSubject(context.Background(), h.names.Evt(model, subject.EventCall))
		if err != nil || raw.Header.Get(subject.HeaderMsgID) != subject.CallEventMsgID(model, id, what) {
			return false
		}
		return json.Unmarshal(raw.Data, &ev) == nil
	}, 30*time.Second, 20*time.Millisecond, "no %s event of call %s; logs:\n%s", what, id, h.logs)
	return ev
}

// job returns the newest job on tt.call.<route>.<model>.
func (h *harness) job(route, model string) (calls.Job, *jetstream.RawStreamMsg) {
	h.t.Helper()
	stream, err := h.js.Stream(context.Background(), h.names.CallStream())
	require.NoError(h.t, err)
	raw, err := stream.GetLastMsgForSubject(context.Background(), h.names.Call(route, model))
	require.NoError(h.t, err)
	var j calls.Job
	require.NoError(h.t, json.Unmarshal(raw.Data, &j))
	return j, raw
}

// filePath is the path of a file:// URL, which must be in the store.
func (h *harness) filePath(u string) string {
	h.t.Helper()
	p, err := url.Parse(u)
	require.NoError(h.t, err)
	require.Equal(h.t, "file", p.Scheme)
	return p.Path
}

func TestComputeCallIsQueuedWithItsVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.createModel("other")
	h.publishVersion("sales", 3, 40)
	h.publishVersion("other", 1, 7)
	h.register(describe())
	h.computeWorker("w-1", []string{"describe", "sample"}, "go", "py", "gpu")
	h.run(dispatcher.Config{})

	h.call("sales", "c1", calls.Call{Function: "describe", Args: map[string]any{"table": "orders"}, DeadlineMS: 90_000})
	ev := h.callEvent("sales", "c1", calls.EventQueued)
	require.Equal(t, "describe@go+py", ev.Route)
	require.Equal(t, "describe", ev.Function)
	require.Equal(t, &calls.Output{Table: "stats", Mode: "replace"}, ev.Output)

	job, raw := h.job("describe@go+py", "sales")
	require.Equal(t, raw.Sequence, ev.JobSeq)
	require.Equal(t, subject.CallJobMsgID("sales", "c1"), raw.Header.Get(subject.HeaderMsgID))
	require.Equal(t, &job, ev.Job)
	require.Equal(t, "c1", job.CallID)
	require.Equal(t, map[string]any{"table": "orders", "n": 3.0}, job.Args)
	require.Equal(t, 2, job.MaxAttempts)
	require.Equal(t, calls.DefaultPageRows, job.PageRows)
	queued, err := time.Parse(time.RFC3339Nano, job.QueuedAt)
	require.NoError(t, err)
	deadline, err := time.Parse(time.RFC3339Nano, job.Deadline)
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, deadline.Sub(queued))

	require.Equal(t, uint64(3), job.Input.Version)
	require.Equal(t, uint64(40), job.Input.AppliedSeq)
	require.Equal(t, blob.Key("sales", 3, blob.DuckDBFile), job.Input.DuckDB.Key)
	db, err := os.ReadFile(h.filePath(job.Input.DuckDB.URL))
	require.NoError(t, err)
	require.Equal(t, "db", string(db))
	require.Len(t, job.Input.Tables, 1)
	require.Equal(t, "orders", job.Input.Tables[0].Name)
	require.EqualValues(t, 2, job.Input.Tables[0].Rows)
	pq, err := os.ReadFile(h.filePath(job.Input.Tables[0].Parquet.URL))
	require.NoError(t, err)
	require.Equal(t, "pq", string(pq))

	require.Len(t, job.Reads, 1)
	require.Equal(t, "other", job.Reads[0].Model)
	require.Equal(t, uint64(1), job.Reads[0].Version)

	require.Len(t, job.Results, 2)
	for i, r := range job.Results {
		require.Equal(t, i+1, r.Attempt)
		require.Equal(t, blob.CallResultKey("sales", "c1", i+1), r.Key)
		// A worker writes its result straight to the URL's file.
		require.NoError(t, os.WriteFile(h.filePath(r.URL), []byte("[]"), 0o644))
		got, err := h.blobs.Get(context.Background(), r.Key)
		require.NoError(t, err)
		require.Equal(t, "[]", string(got))
	}
	// The intake message is settled: the work queue keeps only the job.
	natstest.WaitAcked(t, h.js, h.names.CallStream(), "fn", raw.Sequence-1, "call not acked; logs:\n%s", h.logs)
}

func TestComputeCallWithMinSeqWaitsForANewerVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.createModel("other")
	h.publishVersion("sales", 1, 5)
	h.publishVersion("other", 1, 1)
	h.register(describe())
	h.computeWorker("w-1", []string{"describe"}, "go", "py")
	// The db-manager's part: asked for a version, it publishes one.
	nc := h.js.Conn()
	asked := make(chan struct{}, 1)
	sub, err := nc.Subscribe(h.names.SnapshotNow("sales"), func(*nats.Msg) {
		select {
		case asked <- struct{}{}:
		default:
		}
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	h.run(dispatcher.Config{})

	h.call("sales", "c2", calls.Call{Function: "describe", Args: map[string]any{"table": "orders"}, MinSeq: 12})
	select {
	case <-asked:
	case <-time.After(30 * time.Second):
		t.Fatalf("no snapshot asked for; logs:\n%s", h.logs)
	}
	h.publishVersion("sales", 2, 9) // not yet
	h.publishVersion("sales", 4, 12)
	ev := h.callEvent("sales", "c2", calls.EventQueued)
	require.Equal(t, uint64(4), ev.Job.Input.Version)
	require.Equal(t, blob.Key("sales", 4, blob.DuckDBFile), ev.Job.Input.DuckDB.Key)
}

func TestComputeCallWithoutAWorkerIsUnavailable(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.createModel("other")
	h.publishVersion("sales", 1, 5)
	h.register(describe())
	// A worker with the handler, but not every capability.
	h.computeWorker("w-1", []string{"describe"}, "go")
	h.run(dispatcher.Config{PlacementGrace: 500 * time.Millisecond})

	h.call("sales", "c3", calls.Call{Function: "describe", Args: map[string]any{"table": "orders"}})
	ev := h.callEvent("sales", "c3", "0."+calls.EventFailed)
	require.Equal(t, calls.EventFailed, ev.Event)
	require.True(t, ev.Final)
	require.Equal(t, string(apierr.Unavailable), ev.Error.Code)
	require.Contains(t, ev.Error.Message, "describe")
	require.Contains(t, ev.Error.Message, "go, py")
}

func TestComputeCallsThatFailAtOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t, natsboot.Config{})
	h.createModel("sales")
	h.createModel("other")
	h.publishVersion("sales", 1, 5)
	h.register(describe())
	h.register(&function.Definition{Model: "sales", Name: "restock", Kind: function.KindSQL, SQL: "UPDATE t SET x = 1"})
	h.computeWorker("w-1", []string{"describe"}, "go", "py")
	h.run(dispatcher.Config{})

	for _, c := range []struct {
		model, id string
		body      calls.Call
		code      apierr.Code
		contains  string
	}{
		{"sales", "unknown", calls.Call{Function: "nope"}, apierr.NotFound, "nope"},
		{"nobody", "nomodel", calls.Call{Function: "describe"}, apierr.NotFound, "nobody"},
		{"sales", "missing", calls.Call{Function: "describe"}, apierr.InvalidArgument, "table"},
		{"sales", "extra", calls.Call{Function: "describe", Args: map[string]any{"table": "t", "x": 1}}, apierr.InvalidArgument, `"x"`},
		{"sales", "sql", calls.Call{Function: "restock"}, apierr.InvalidArgument, "tt.mut.sales.call"},
		// other has no version, so a function reading it cannot run.
		{"sales", "noreads", calls.Call{Function: "describe", Args: map[string]any{"table": "t"}}, apierr.NotFound, "other"},
	} {
		h.call(c.model, c.id, c.body)
		ev := h.callEvent(c.model, c.id, "0."+calls.EventFailed)
		require.Equal(t, c.id, ev.CallID)
		require.True(t, ev.Final)
		require.Equal(t, string(c.code), ev.Error.Code, "%s: %s", c.id, ev.Error.Message)
		require.Contains(t, ev.Error.Message, c.contains, c.id)
	}

	// A call id of another model fails, named by the call's sequence.
	b, err := json.Marshal(calls.Call{Function: "describe", Args: map[string]any{"table": "t"}})
	require.NoError(t, err)
	m := nats.NewMsg(h.names.Call(subject.CallIntake, "sales"))
	m.Data = b
	m.Header.Set(subject.HeaderMsgID, "crm.c1")
	ack, err := h.js.PublishMsg(context.Background(), m)
	require.NoError(t, err)
	ev := h.callEvent("sales", subject.SeqRequestID(ack.Sequence), "0."+calls.EventFailed)
	require.Equal(t, string(apierr.InvalidArgument), ev.Error.Code)
}
