package dbmanager_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// Each version is a DuckDB file and one Parquet file per table, described
// by a manifest; a table that did not change is linked from the previous
// version, and only the newest keep versions remain.
func TestSnapshotVersions(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 50, Keep: 2}})
	h.start(t, l, t.TempDir())

	h.publish(t, "m", csvRows("a", "a1", "x\n1\n2\n3\n"))
	last := h.publish(t, "m", csvRows("b", "b1", "y\n10\n20\n"))
	spec := h.awaitVersion(t, "m", last.Sequence)
	first := spec.GetVersion()
	require.Equal(t, last.Sequence, spec.GetAppliedSeq())
	require.Equal(t, l.epoch, spec.GetLeaseEpoch())

	man := h.manifest(t, "m", first)
	require.Equal(t, "m", man.GetModel())
	require.Equal(t, first, man.GetVersion())
	require.Equal(t, last.Sequence, man.GetAppliedSeq())
	require.Equal(t, l.epoch, man.GetLeaseEpoch())
	require.NotEmpty(t, man.GetCreatedAt())
	requireFileRef(t, h, "m", first, man.GetDuckdb(), blob.DuckDBFile)
	require.Len(t, man.GetTables(), 2, "the user tables only")
	tables1 := tablesOf(man)
	for _, tm := range man.GetTables() {
		requireFileRef(t, h, "m", first, tm.GetParquet(), blob.ParquetFile(tm.GetName()))
	}
	require.Equal(t, int64(3), tables1["a"].GetRows())
	require.Equal(t, int64(2), tables1["b"].GetRows())
	db := openCopy(t, h.blobPath(blob.Key("m", first, blob.DuckDBFile)))
	var n int
	queryRow(t, db, "SELECT count(*) FROM a", &n)
	require.Equal(t, 3, n)
	requireSnapshotEvent(t, h, "m", first)

	// Only a changes: b's Parquet is the previous version's file.
	changed := h.publish(t, "m", csvRows("a", "a2", "x\n4\n"))
	spec = h.awaitVersion(t, "m", changed.Sequence)
	second := spec.GetVersion()
	require.Equal(t, first+1, second)
	man2 := h.manifest(t, "m", second)
	tables := tablesOf(man2)
	for _, tm := range man2.GetTables() {
		requireFileRef(t, h, "m", second, tm.GetParquet(), blob.ParquetFile(tm.GetName()))
	}
	require.Equal(t, int64(4), tables["a"].GetRows())
	require.Equal(t, int64(2), tables["b"].GetRows())
	require.NotEqual(t, tables1["a"].GetParquet().GetSha256(), tables["a"].GetParquet().GetSha256(), "a is rewritten")
	require.False(t, sameFile(t, h.blobPath(blob.Key("m", first, "a.parquet")), h.blobPath(blob.Key("m", second, "a.parquet"))))
	require.Equal(t, tables1["b"].GetParquet().GetSha256(), tables["b"].GetParquet().GetSha256(), "b is linked")
	require.True(t, sameFile(t, h.blobPath(blob.Key("m", first, "b.parquet")), h.blobPath(blob.Key("m", second, "b.parquet"))))
	requireSnapshotEvent(t, h, "m", second)

	// Two more versions: only the newest two remain.
	for _, id := range []string{"a3", "a4"} {
		ack := h.publish(t, "m", csvRows("a", id, "x\n5\n"))
		h.awaitVersion(t, "m", ack.Sequence)
	}
	newest := h.spec(t, "m").GetVersion()
	require.Equal(t, second+2, newest)
	want := []string{blob.VersionDir(newest - 1), blob.VersionDir(newest)}
	require.Eventually(t, func() bool {
		dirs, err := h.blobs.List(testContext(t), blob.ModelPrefix("m"))
		require.NoError(t, err)
		return len(dirs) == 2 && dirs[0] == want[0] && dirs[1] == want[1]
	}, waitFor, tick, "want only %v", want)
	// A collected version's links leave the newer versions' files whole.
	requireFileRef(t, h, "m", newest, tablesOf(h.manifest(t, "m", newest))["b"].GetParquet(), "b.parquet")
}

func tablesOf(man *teatreev1.Manifest) map[string]*teatreev1.TableManifest {
	out := map[string]*teatreev1.TableManifest{}
	for _, tm := range man.GetTables() {
		out[tm.GetName()] = tm
	}
	return out
}

// requireFileRef checks that a manifest's file reference names the file of
// its version, with its size and checksum.
func requireFileRef(t *testing.T, h *harness, model string, version uint64, ref *teatreev1.FileRef, name string) {
	t.Helper()
	require.NotNil(t, ref, name)
	require.Equal(t, name, ref.GetPath())
	b, err := os.ReadFile(h.blobPath(blob.Key(model, version, name)))
	require.NoError(t, err)
	require.Equal(t, int64(len(b)), ref.GetBytes(), name)
	sum := sha256.Sum256(b)
	require.Equal(t, hex.EncodeToString(sum[:]), ref.GetSha256(), name)
}

func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	ia, err := os.Stat(a)
	require.NoError(t, err)
	ib, err := os.Stat(b)
	require.NoError(t, err)
	return os.SameFile(ia, ib)
}

// requireSnapshotEvent checks that the version was announced on
// tt.evt.<model>.snapshot with its manifest.
func requireSnapshotEvent(t *testing.T, h *harness, model string, version uint64) {
	t.Helper()
	ctx := testContext(t)
	var event []byte
	require.Eventually(t, func() bool {
		cons, err := h.env.JS.OrderedConsumer(ctx, h.names.EvtStream(), jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{h.names.Evt(model, subject.EventSnapshot)},
		})
		require.NoError(t, err)
		batch, err := cons.FetchNoWait(1000)
		require.NoError(t, err)
		for msg := range batch.Messages() {
			if msg.Headers().Get(subject.HeaderMsgID) == subject.SnapshotMsgID(model, version) {
				event = msg.Data()
			}
		}
		return event != nil
	}, waitFor, tick, "no snapshot event for version %d", version)
	b, err := h.blobs.Get(ctx, blob.Key(model, version, blob.ManifestFile))
	require.NoError(t, err)
	require.JSONEq(t, string(b), string(event))
	got := &teatreev1.Manifest{}
	require.NoError(t, wire.Unmarshal(event, got))
	require.Equal(t, version, got.GetVersion())
}

// A file ahead of the newest version, after a publication that failed (here
// for a lost lease), is published when the manager starts again, without
// waiting for another mutation.
func TestSnapshotOfFileAheadOfCatalog(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	dir := t.TempDir()

	stale := l
	stale.node = "n-stale" // its fence fails: it applies, but publishes no version
	run := h.start(t, stale, dir)
	var last uint64
	for _, id := range []string{"a1", "a2", "a3"} {
		last = h.publish(t, "m", csvRows("a", id, "x\n1\n")).Sequence
	}
	outcomes.await(t, "a1", "a2", "a3")
	run.stop(t)
	require.Zero(t, h.spec(t, "m").GetVersion(), "a stale holder published a version")

	h.start(t, l, dir)
	spec := h.awaitVersion(t, "m", last)
	require.Equal(t, last, spec.GetAppliedSeq())
	require.Equal(t, int64(3), tablesOf(h.manifest(t, "m", spec.GetVersion()))["a"].GetRows())
}

// A version's Parquet files are written while the writer goes on applying,
// from a read transaction begun when the version was staged: they hold the
// state at the version's applied_seq, as its DuckDB file does, and nothing
// applied after it.
func TestVersionHoldsTheStagedState(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 50, Keep: 5}})
	staged := make(chan uint64, 1)
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	var held atomic.Bool
	h.start(t, l, t.TempDir(), dbmanager.WithBeforeExport(func(applied uint64) {
		if held.CompareAndSwap(false, true) {
			staged <- applied
			<-hold
		}
	}))
	t.Cleanup(release) // before the runner stops
	outcomes := h.watchOutcomes(t, "m")

	first := h.publish(t, "m", csvRows("a", "a1", "x\n1\n2\n3\n"))
	require.Equal(t, first.Sequence, <-staged)
	// The first version waits before its Parquet; the writer applies more.
	h.publish(t, "m", csvRows("a", "a2", "x\n4\n5\n"))
	requireApplied(t, outcomes.await(t, "a2")["a2"], 2)
	release()

	spec := h.awaitVersion(t, "m", first.Sequence)
	man := h.manifest(t, "m", spec.GetVersion())
	require.Equal(t, first.Sequence, man.GetAppliedSeq())
	require.Equal(t, int64(3), tablesOf(man)["a"].GetRows())
	db := openCopy(t, h.blobPath(blob.Key("m", man.GetVersion(), blob.DuckDBFile)))
	var n int
	queryRow(t, db, "SELECT count(*) FROM a", &n)
	require.Equal(t, 3, n, "the version's DuckDB file")
	queryRow(t, db, "SELECT count(*) FROM read_parquet('"+h.blobPath(blob.Key("m", man.GetVersion(), blob.ParquetFile("a")))+"')", &n)
	require.Equal(t, 3, n, "the version's Parquet file")
}

// A model of one row costs little disk: its file and each of its versions
// (DuckDB file, Parquet and manifest) are under 100 KiB, because new model
// files use small blocks.
func TestOneRowModelIsSmall(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m", Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 50}})
	dir := t.TempDir()
	h.start(t, l, dir)
	ack := h.publish(t, "m", csvRows("a", "a1", "x,y\n1,hello\n"))
	spec := h.awaitVersion(t, "m", ack.Sequence)

	const limit = 100 << 10
	fi, err := os.Stat(localFile(dir))
	require.NoError(t, err)
	require.Less(t, fi.Size(), int64(limit), "the model's file")
	var version int64
	entries, err := os.ReadDir(h.blobPath(blob.VersionPrefix("m", spec.GetVersion())))
	require.NoError(t, err)
	for _, e := range entries {
		fi, err := e.Info()
		require.NoError(t, err)
		version += fi.Size()
	}
	require.Less(t, version, int64(limit), "the version's files")
	t.Logf("model file %d bytes, version %d bytes", fi.Size(), version)
}
