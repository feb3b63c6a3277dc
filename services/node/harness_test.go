package node_test

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
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// leaseTTL is short so that a node heartbeats every leaseTTL/3, and loses
// its leases soon after its heartbeats stop.
const leaseTTL = 2 * time.Second

// harness is an embedded JetStream server with teatree's streams and
// buckets, a blob directory and a data directory for one node.
type harness struct {
	t       *testing.T
	js      jetstream.JetStream
	url     string // of the server
	names   subject.Names
	models  jetstream.KeyValue
	owners  jetstream.KeyValue
	workers jetstream.KeyValue
	mut     jetstream.Stream
	evt     jetstream.Stream
	blobs   *blob.Dir
	dir     string
	logs    *natstest.LogBuffer
	// manager is the nodes' db-manager configuration.
	manager dbmanager.Config
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	ctx := context.Background()
	env := natstest.Start(t)
	boot := natsboot.Config{LeaseTTL: leaseTTL}.WithDefaults()
	require.NoError(t, natsboot.Setup(ctx, env.JS, boot))
	h := &harness{t: t, js: env.JS, url: env.URL, names: boot.Names, dir: t.TempDir(), logs: &natstest.LogBuffer{}}
	h.models, h.owners, h.workers, h.mut, h.evt = env.Models, env.Owners, env.Workers, env.Mut, env.Evt
	var err error
	h.blobs, err = blob.NewDir(t.TempDir())
	require.NoError(t, err)
	return h
}

// run starts node id and waits until it is ready. stop cancels it and
// returns what Run returned; the test's end stops it too.
func (h *harness) run(id string) (stop func() error) {
	h.t.Helper()
	return h.start(id, h.dir, h.workers)
}

// start runs node id like run, with its files in dir and its heartbeats
// written through workers.
func (h *harness) start(id, dir string, workers jetstream.KeyValue) (stop func() error) {
	h.t.Helper()
	n, err := node.New(node.Config{ID: id, Capabilities: []string{"duckdb"}, Slots: 2, Dir: dir,
		Names: h.names, LeaseTTL: leaseTTL, WorkerTTL: natsboot.DefaultWorkerTTL, Manager: h.manager},
		node.Deps{JS: h.js, Models: h.models, Owners: h.owners, Workers: workers, Blobs: h.blobs,
			Log: slog.New(slog.NewTextHandler(h.logs, nil))})
	require.NoError(h.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- n.Run(ctx, func() { close(ready) }) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(20 * time.Second):
				h.t.Error("node did not stop")
			}
		})
		return runErr
	}
	h.t.Cleanup(func() { require.NoError(h.t, stop()) })
	select {
	case <-ready:
	case err := <-done:
		h.t.Fatalf("node stopped before ready: %v", err)
	case <-time.After(10 * time.Second):
		h.t.Fatal("node not ready")
	}
	return stop
}

func (h *harness) createModel(id string) *teatreev1.ModelSpec {
	h.t.Helper()
	spec, err := catalog.CreateModel(context.Background(), h.models, h.mut, &teatreev1.ModelSpec{Id: id})
	require.NoError(h.t, err)
	return spec
}

func (h *harness) grant(model, node string) uint64 {
	h.t.Helper()
	epoch, _, err := catalog.Grant(context.Background(), h.owners, model, node)
	require.NoError(h.t, err)
	return epoch
}

// publishSQL publishes an sql mutation and returns its sequence.
func (h *harness) publishSQL(model, requestID, sql string) uint64 {
	h.t.Helper()
	m := nats.NewMsg(h.names.Mut(model, subject.OpSQL))
	m.Data = []byte(`{"sql":"` + sql + `"}`)
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	m.Header.Set(subject.HeaderMsgID, requestID)
	ack, err := h.js.PublishMsg(context.Background(), m)
	require.NoError(h.t, err)
	return ack.Sequence
}

// findOutcome returns the status of requestID in model's newest outcomes
// event, nil when there is none.
func (h *harness) findOutcome(model, requestID string) *teatreev1.RequestStatus {
	raw, err := h.evt.GetLastMsgForSubject(context.Background(), h.names.Evt(model, subject.EventOutcomes))
	if err != nil {
		return nil
	}
	ev := &teatreev1.Outcomes{}
	if proto.Unmarshal(raw.Data, ev) != nil {
		return nil
	}
	for _, s := range ev.GetStatuses() {
		if s.GetRequestId() == requestID {
			return s
		}
	}
	return nil
}

// outcome waits for the outcome of requestID.
func (h *harness) outcome(model, requestID string) *teatreev1.RequestStatus {
	h.t.Helper()
	var s *teatreev1.RequestStatus
	require.Eventually(h.t, func() bool {
		s = h.findOutcome(model, requestID)
		return s != nil
	}, 30*time.Second, 20*time.Millisecond, "no outcome for %s/%s; logs:\n%s", model, requestID, h.logs)
	return s
}
