package dbmanager_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	_ "github.com/duckdb/duckdb-go/v2" // the duckdb driver, to read model files
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
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// waitFor bounds every require.Eventually: generous, because the machine
// is shared and DuckDB's first open is slow.
const waitFor = 30 * time.Second

const tick = 20 * time.Millisecond

// harness is one embedded JetStream server with teatree's streams and
// buckets, and a blob store, for one test.
type harness struct {
	env    *natstest.Env
	names  subject.Names
	models jetstream.KeyValue
	owners jetstream.KeyValue
	pins   jetstream.KeyValue
	// functions is tt_functions, where call mutations find their function.
	functions jetstream.KeyValue
	mut       jetstream.Stream
	blobs     *blob.Dir
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	return newHarnessWith(t, natsboot.Config{})
}

// newHarnessWith sets the streams up again with cfg. Leases live an hour:
// no test renews them, and a slow run must not lose one.
func newHarnessWith(t testing.TB, cfg natsboot.Config) *harness {
	t.Helper()
	env := natstest.Start(t)
	cfg.LeaseTTL = time.Hour
	ctx := testContext(t)
	require.NoError(t, natsboot.Setup(ctx, env.JS, cfg))
	blobs, err := blob.NewDir(t.TempDir())
	require.NoError(t, err)
	functions, err := env.JS.KeyValue(ctx, subject.Default().FunctionsBucket())
	require.NoError(t, err)
	return &harness{env: env, names: subject.Default(), models: env.Models, owners: env.Owners, pins: env.Pins,
		functions: functions, mut: env.Mut, blobs: blobs}
}

func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// lease is a model's lease as granted to one node.
type lease struct {
	model, node string
	epoch, rev  uint64
}

// createModel creates a model whose snapshots are taken every 50ms and
// grants its lease to node n1.
func (h *harness) createModel(t testing.TB, spec *teatreev1.ModelSpec) lease {
	t.Helper()
	ctx := testContext(t)
	if spec.Snapshot == nil {
		spec.Snapshot = &teatreev1.SnapshotPolicy{IntervalMs: 50}
	}
	_, err := catalog.CreateModel(ctx, h.models, h.mut, spec)
	require.NoError(t, err)
	return h.grant(t, spec.GetId(), "n1")
}

func (h *harness) grant(t testing.TB, model, node string) lease {
	t.Helper()
	epoch, rev, err := catalog.Grant(testContext(t), h.owners, model, node)
	require.NoError(t, err)
	return lease{model: model, node: node, epoch: epoch, rev: rev}
}

// spec reads a model's current spec, with its newest version.
func (h *harness) spec(t testing.TB, model string) *teatreev1.ModelSpec {
	t.Helper()
	spec, _, err := catalog.GetModel(testContext(t), h.models, model)
	require.NoError(t, err)
	return spec
}

// runner is one running db-manager.
type runner struct {
	dir    string
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// start runs a db-manager for l in dir, from the model's current spec, until
// stop (at the latest in t.Cleanup).
func (h *harness) start(t testing.TB, l lease, dir string, opts ...func(*dbmanager.Config)) *runner {
	t.Helper()
	cfg := dbmanager.Config{
		Model: l.model,
		Spec:  h.spec(t, l.model),
		Epoch: l.epoch,
		Dir:   dir,
		Names: h.names,
	}
	for _, o := range opts {
		o(&cfg)
	}
	m := dbmanager.New(cfg, dbmanager.Deps{
		JS:        h.env.JS,
		Models:    h.models,
		Pins:      h.pins,
		Functions: h.functions,
		Blobs:     h.blobs,
		Fence: func(ctx context.Context) error {
			return catalog.Fence(ctx, h.owners, l.model, l.node, l.epoch)
		},
		Log: testLogger(t),
	})
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels the manager and waits for Run to return. Run's error after a
// cancel is only logged: an interrupted commit legitimately reports one.
func (r *runner) stop(t testing.TB) error {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(waitFor):
			var stacks strings.Builder
			pprof.Lookup("goroutine").WriteTo(&stacks, 2)
			t.Fatalf("db-manager did not stop; goroutines:\n%s", stacks.String())
		}
		if r.err != nil {
			t.Logf("db-manager stopped: %v", r.err)
		}
	})
	return r.err
}

// stopped reports whether Run returned by itself, and with what.
func (r *runner) stopped() (bool, error) {
	select {
	case err := <-r.done:
		r.done <- err
		return true, err
	default:
		return false, nil
	}
}

// testLogger logs to the test; a benchmark's runs log nothing, so that
// its output is its numbers.
func testLogger(t testing.TB) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// mutation is one message to tt.mut.<model>.<op>.
type mutation struct {
	op, id      string
	table, key  string
	contentType string
	bodyRef     string
	notifyURL   string
	mode        string
	body        []byte
	// subject overrides tt.mut.<model>.<op>.
	subject string
}

func (h *harness) publish(t testing.TB, model string, m mutation) *jetstream.PubAck {
	t.Helper()
	subj := m.subject
	if subj == "" {
		subj = h.names.Mut(model, m.op)
	}
	msg := nats.NewMsg(subj)
	msg.Data = m.body
	set := func(k, v string) {
		if v != "" {
			msg.Header.Set(k, v)
		}
	}
	set(subject.HeaderMsgID, m.id)
	set(subject.HeaderTable, m.table)
	set(subject.HeaderKey, m.key)
	set(subject.HeaderContentType, m.contentType)
	set(subject.HeaderBodyRef, m.bodyRef)
	set(subject.HeaderNotifyURL, m.notifyURL)
	set(subject.HeaderMode, m.mode)
	ack, err := h.env.JS.PublishMsg(testContext(t), msg)
	require.NoError(t, err)
	return ack
}

func csvRows(table, id, body string) mutation {
	return mutation{op: subject.OpAppend, id: id, table: table, contentType: subject.ContentCSV, body: []byte(body)}
}

func ndjsonRows(op, table, id string, lines ...string) mutation {
	return mutation{op: op, id: id, table: table, contentType: subject.ContentNDJSON, body: []byte(strings.Join(lines, "\n") + "\n")}
}

func sqlMutation(id, body string) mutation {
	return mutation{op: subject.OpSQL, id: id, contentType: subject.ContentJSON, body: []byte(body)}
}

// arrowRows is an Arrow IPC stream of one batch with columns n BIGINT and
// s VARCHAR.
func arrowRows(t *testing.T, ns []int64, ss []string) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "n", Type: arrow.PrimitiveTypes.Int64},
		{Name: "s", Type: arrow.BinaryTypes.String},
	}, nil)
	b := array.NewRecordBuilder(memory.NewGoAllocator(), schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues(ns, nil)
	b.Field(1).(*array.StringBuilder).AppendValues(ss, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// outcome is one request status as announced, and whether it came in a
// replay after a restart.
type outcome struct {
	*teatreev1.RequestStatus
	replay    bool
	notifyURL string
	// epoch is the writer epoch of the event that carried it.
	epoch uint64
}

// outcomeLog collects every outcomes event of a model from TT_EVT.
type outcomeLog struct {
	mu     sync.Mutex
	events int
	list   []outcome
}

func (h *harness) watchOutcomes(t *testing.T, model string) *outcomeLog {
	t.Helper()
	ctx := testContext(t)
	cons, err := h.env.JS.OrderedConsumer(ctx, h.names.EvtStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{h.names.Evt(model, subject.EventOutcomes)},
	})
	require.NoError(t, err)
	l := &outcomeLog{}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		ev := &teatreev1.Outcomes{}
		if err := proto.Unmarshal(msg.Data(), ev); err != nil {
			t.Errorf("decode outcomes: %v", err)
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.events++
		for _, s := range ev.GetStatuses() {
			l.list = append(l.list, outcome{s, ev.GetReplay(), ev.GetNotifyUrls()[s.GetRequestId()], ev.GetEpoch()})
		}
	})
	require.NoError(t, err)
	t.Cleanup(cc.Stop)
	return l
}

func (l *outcomeLog) all() []outcome {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]outcome(nil), l.list...)
}

func (l *outcomeLog) eventCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.events
}

// byID groups the outcomes by request id, in the order they came.
func (l *outcomeLog) byID() map[string][]outcome {
	m := map[string][]outcome{}
	for _, o := range l.all() {
		m[o.GetRequestId()] = append(m[o.GetRequestId()], o)
	}
	return m
}

// await waits until every id has an outcome and returns the first of each.
func (l *outcomeLog) await(t *testing.T, ids ...string) map[string]outcome {
	t.Helper()
	var missing []string
	ok := assertEventually(func() bool {
		got := l.byID()
		missing = missing[:0]
		for _, id := range ids {
			if len(got[id]) == 0 {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0
	})
	require.True(t, ok, "no outcome for %d requests, e.g. %v", len(missing), missing[:min(len(missing), 5)])
	first := map[string]outcome{}
	for id, os := range l.byID() {
		first[id] = os[0]
	}
	return first
}

// assertEventually is require.Eventually's loop for callers that want
// their own failure message.
func assertEventually(cond func() bool) bool {
	deadline := time.Now().Add(waitFor)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(tick)
	}
}

func requireApplied(t *testing.T, o outcome, rows int64) {
	t.Helper()
	require.Equal(t, subject.StatusApplied, o.GetStatus(), "request %s: %v", o.GetRequestId(), o.GetError())
	require.NotNil(t, o.RowsAffected, "request %s: rows_affected", o.GetRequestId())
	require.Equal(t, rows, o.GetRowsAffected(), "request %s: rows_affected", o.GetRequestId())
}

func requireFailed(t *testing.T, o outcome, code string) {
	t.Helper()
	require.Equal(t, subject.StatusFailed, o.GetStatus(), "request %s", o.GetRequestId())
	require.Equal(t, code, o.GetError().GetCode(), "request %s: %s", o.GetRequestId(), o.GetError().GetMessage())
	require.NotEmpty(t, o.GetError().GetMessage(), "request %s", o.GetRequestId())
}

// awaitVersion waits until the catalog names a version that includes seq
// and returns the model's spec then.
func (h *harness) awaitVersion(t *testing.T, model string, seq uint64) *teatreev1.ModelSpec {
	t.Helper()
	var spec *teatreev1.ModelSpec
	require.Eventually(t, func() bool {
		spec = h.spec(t, model)
		return spec.GetAppliedSeq() >= seq
	}, waitFor, tick, "no version of %s includes seq %d", model, seq)
	return spec
}

func (h *harness) manifest(t *testing.T, model string, version uint64) *teatreev1.Manifest {
	t.Helper()
	b, err := h.blobs.Get(testContext(t), blob.Key(model, version, blob.ManifestFile))
	require.NoError(t, err)
	man := &teatreev1.Manifest{}
	require.NoError(t, wire.Unmarshal(b, man))
	return man
}

func (h *harness) blobPath(key string) string {
	return filepath.Join(h.blobs.Root(), filepath.FromSlash(key))
}

// openCopy opens a copy of a DuckDB file (and its WAL, if any), so that
// reading it can neither change it nor hold a lock on it.
func openCopy(t *testing.T, path string) *sql.DB {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy.duckdb")
	copyFile(t, path, dst)
	if _, err := os.Stat(path + ".wal"); err == nil {
		copyFile(t, path+".wal", dst+".wal")
	}
	db, err := sql.Open("duckdb", dst)
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	return db
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	require.NoError(t, err)
	defer in.Close()
	out, err := os.Create(dst)
	require.NoError(t, err)
	_, err = io.Copy(out, in)
	require.NoError(t, err)
	require.NoError(t, out.Close())
}

// queryRow scans one row of q into dst.
func queryRow(t *testing.T, db *sql.DB, q string, dst ...any) {
	t.Helper()
	require.NoError(t, db.QueryRow(q).Scan(dst...), q)
}

// queryStrings returns every row of q, its columns joined with "|".
func queryStrings(t *testing.T, db *sql.DB, q string) []string {
	t.Helper()
	rows, err := db.Query(q)
	require.NoError(t, err, q)
	defer rows.Close()
	cols, err := rows.Columns()
	require.NoError(t, err)
	var out []string
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		require.NoError(t, rows.Scan(ptrs...))
		parts := make([]string, len(cols))
		for i, v := range vals {
			parts[i] = "NULL"
			if v.Valid {
				parts[i] = v.String
			}
		}
		out = append(out, strings.Join(parts, "|"))
	}
	require.NoError(t, rows.Err())
	return out
}

// localFile is the read-write file of a manager run in dir.
func localFile(dir string) string { return filepath.Join(dir, "model.duckdb") }

func ids(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%d", prefix, i))
	}
	return out
}
