package dispatcher_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/dispatcher"
)

// harness is an embedded JetStream server with teatree's streams and
// buckets, and at most one dispatcher running on it.
type harness struct {
	t       *testing.T
	boot    natsboot.Config
	js      jetstream.JetStream
	names   subject.Names
	models  jetstream.KeyValue
	owners  jetstream.KeyValue
	workers jetstream.KeyValue
	mut     jetstream.Stream
	evt     jetstream.Stream
	logs    *natstest.LogBuffer
	// functions, compute and blobs serve compute calls.
	functions jetstream.KeyValue
	compute   jetstream.KeyValue
	blobs     *blob.Dir
}

func newHarness(t *testing.T, boot natsboot.Config) *harness {
	t.Helper()
	ctx := context.Background()
	env := natstest.Start(t)
	boot = boot.WithDefaults()
	require.NoError(t, natsboot.Setup(ctx, env.JS, boot))
	h := &harness{t: t, boot: boot, js: env.JS, names: boot.Names, logs: &natstest.LogBuffer{}}
	h.models, h.owners, h.workers, h.mut, h.evt = env.Models, env.Owners, env.Workers, env.Mut, env.Evt
	var err error
	h.functions, err = env.JS.KeyValue(ctx, h.names.FunctionsBucket())
	require.NoError(t, err)
	h.compute, err = env.JS.KeyValue(ctx, h.names.ComputeBucket())
	require.NoError(t, err)
	h.blobs, err = blob.NewDir(t.TempDir())
	require.NoError(t, err)
	return h
}

// run starts a dispatcher and waits until it is ready; it stops at the
// end of the test, and must stop cleanly.
func (h *harness) run(cfg dispatcher.Config) {
	h.t.Helper()
	cfg.Names, cfg.LeaseTTL, cfg.WorkerTTL = h.names, h.boot.LeaseTTL, h.boot.WorkerTTL
	d := dispatcher.New(cfg, dispatcher.Deps{JS: h.js, Models: h.models, Owners: h.owners, Workers: h.workers,
		Functions: h.functions, Compute: h.compute, Blobs: h.blobs, Log: slog.New(slog.NewTextHandler(h.logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- d.Run(ctx, func() { close(ready) }) }()
	h.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(h.t, err)
		case <-time.After(10 * time.Second):
			h.t.Error("dispatcher did not stop")
		}
	})
	select {
	case <-ready:
	case err := <-done:
		h.t.Fatalf("dispatcher stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("dispatcher not ready")
	}
}

func (h *harness) createModel(id string, capabilities ...string) *teatreev1.ModelSpec {
	h.t.Helper()
	spec, err := catalog.CreateModel(context.Background(), h.models, h.mut, &teatreev1.ModelSpec{Id: id, Capabilities: capabilities})
	require.NoError(h.t, err)
	return spec
}

// publish publishes a mutation on subj with requestID ("" for none) and
// returns its stream sequence.
func (h *harness) publish(subj, requestID string) uint64 {
	h.t.Helper()
	m := nats.NewMsg(subj)
	m.Data = []byte(`{"sql":"create table t (x int)"}`)
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	if requestID != "" {
		m.Header.Set(subject.HeaderMsgID, requestID)
	}
	ack, err := h.js.PublishMsg(context.Background(), m)
	require.NoError(h.t, err)
	return ack.Sequence
}

// heartbeat writes a node's heartbeat as a node would.
func (h *harness) heartbeat(node string, freeSlots int32, capabilities ...string) {
	h.t.Helper()
	require.NoError(h.t, h.putWorker(node, freeSlots, capabilities...))
}

// keepAlive heartbeats as node every LeaseTTL/5, as a live node would,
// until the returned function is called (the node dies) or the test ends.
func (h *harness) keepAlive(node string, freeSlots int32, capabilities ...string) (die func()) {
	h.t.Helper()
	h.heartbeat(node, freeSlots, capabilities...)
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(h.boot.LeaseTTL / 5)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				_ = h.putWorker(node, freeSlots, capabilities...) // no assertion: it may outlive the test
			}
		}
	}()
	die = sync.OnceFunc(func() {
		close(stop)
		<-stopped
	})
	h.t.Cleanup(die)
	return die
}

// putWorker writes a node's heartbeat, asserting nothing.
func (h *harness) putWorker(node string, freeSlots int32, capabilities ...string) error {
	b, err := wire.Marshal(&teatreev1.Worker{Node: node, Capabilities: capabilities, Slots: max(freeSlots, 1),
		FreeSlots: freeSlots, SeenAt: time.Now().UTC().Format(time.RFC3339Nano)})
	if err != nil {
		return err
	}
	_, err = h.workers.Put(context.Background(), node, b)
	return err
}

// outcome waits for the newest outcomes event of model in TT_EVT.
func (h *harness) outcome(model string) (*teatreev1.Outcomes, *jetstream.RawStreamMsg) {
	h.t.Helper()
	return h.event(model, subject.EventOutcomes)
}

// event waits for the newest event of kind (outcomes, reject) of model in
// TT_EVT.
func (h *harness) event(model, kind string) (*teatreev1.Outcomes, *jetstream.RawStreamMsg) {
	h.t.Helper()
	var raw *jetstream.RawStreamMsg
	require.Eventually(h.t, func() bool {
		var err error
		raw, err = h.evt.GetLastMsgForSubject(context.Background(), h.names.Evt(model, kind))
		return err == nil
	}, 15*time.Second, 20*time.Millisecond, "no %s event for %s; logs:\n%s", kind, model, h.logs)
	ev := &teatreev1.Outcomes{}
	require.NoError(h.t, proto.Unmarshal(raw.Data, ev))
	return ev, raw
}

// noOutcome asserts that model has no outcomes event.
func (h *harness) noOutcome(model string) {
	h.t.Helper()
	h.noEvent(model, subject.EventOutcomes)
}

// noEvent asserts that model has no event of kind.
func (h *harness) noEvent(model, kind string) {
	h.t.Helper()
	_, err := h.evt.GetLastMsgForSubject(context.Background(), h.names.Evt(model, kind))
	require.ErrorIs(h.t, err, jetstream.ErrMsgNotFound)
}

// stored reports whether TT_MUT still holds the message at seq.
func (h *harness) stored(seq uint64) bool {
	h.t.Helper()
	_, err := h.mut.GetMsg(context.Background(), seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false
	}
	require.NoError(h.t, err)
	return true
}

// lease returns model's lease, nil when there is none or it cannot be
// read. It makes no assertion: conditions of require.Never and
// require.Eventually run in goroutines that may outlive the test.
func (h *harness) lease(model string) *teatreev1.Lease {
	l, _, err := catalog.GetLease(context.Background(), h.owners, model)
	if err != nil {
		return nil
	}
	return l
}

// waitLease waits until model's lease names node.
func (h *harness) waitLease(model, node string) *teatreev1.Lease {
	h.t.Helper()
	var l *teatreev1.Lease
	require.Eventually(h.t, func() bool {
		var err error
		l, _, err = catalog.GetLease(context.Background(), h.owners, model)
		// A grant is a create, then the epoch's update: wait for both.
		return err == nil && l.GetNode() == node && l.GetEpoch() > 0
	}, 15*time.Second, 20*time.Millisecond, "model %s not placed on %s; logs:\n%s", model, node, h.logs)
	return l
}

// handled waits until the dispatcher has acknowledged every message up
// to seq.
func (h *harness) handled(seq uint64) {
	h.t.Helper()
	natstest.WaitAcked(h.t, h.js, h.names.MutStream(), "dispatcher", seq, "message %d not handled; logs:\n%s", seq, h.logs)
}
