package query_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/ipc"
	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/query"
)

type env struct {
	// cacheDir is the executor's: where it keeps the versions it opened.
	cacheDir string
	nc       *nats.Conn
	js       jetstream.JetStream
	results  *results.Store
	pins     jetstream.KeyValue
	models   jetstream.KeyValue
	blobs    *blob.Dir
}

// start runs an executor over a model "m" whose version 1 holds table t
// with rows (i, 'name-i') for i in [0, rows).
func start(t *testing.T, rows int, cfg query.Config) *env {
	t.Helper()
	ctx := context.Background()
	ne := natstest.Start(t)
	names := subject.Default()
	models, err := ne.JS.KeyValue(ctx, names.ModelsBucket())
	require.NoError(t, err)
	resKV, err := ne.JS.KeyValue(ctx, names.ResultsBucket())
	require.NoError(t, err)
	mut, err := ne.JS.Stream(ctx, names.MutStream())
	require.NoError(t, err)
	blobs, err := blob.NewDir(t.TempDir())
	require.NoError(t, err)

	// Version 1: a DuckDB file as a db-manager would publish it.
	path := filepath.Join(t.TempDir(), "model.duckdb")
	db, err := sql.Open("duckdb", path)
	require.NoError(t, err)
	_, err = db.Exec(fmt.Sprintf("CREATE TABLE t AS SELECT i::BIGINT AS i, 'name-' || i AS name FROM range(%d) r(i)", rows))
	require.NoError(t, err)
	require.NoError(t, db.Close())
	require.NoError(t, blobs.PutFile(ctx, blob.Key("m", 1, blob.DuckDBFile), path))
	spec, err := catalog.CreateModel(ctx, models, mut, &teatreev1.ModelSpec{Id: "m"})
	require.NoError(t, err)
	spec.Version, spec.AppliedSeq = 1, 10
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = models.Put(ctx, "m", b)
	require.NoError(t, err)

	cfg.Names, cfg.CacheDir = names, t.TempDir()
	store := results.New(resKV)
	pins, err := ne.JS.KeyValue(ctx, names.PinsBucket())
	require.NoError(t, err)
	ex := query.New(cfg, query.Deps{NC: ne.Conn, JS: ne.JS, Models: models, Pins: pins, Results: store, Blobs: blobs, Log: slog.New(slog.DiscardHandler)})
	runCtx, cancel := context.WithCancel(ctx)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- ex.Run(runCtx, func() { close(ready) }) }()
	t.Cleanup(func() {
		cancel()
		require.NoError(t, <-done)
	})
	<-ready
	return &env{cacheDir: cfg.CacheDir, nc: ne.Conn, js: ne.JS, results: store, pins: pins, models: models, blobs: blobs}
}

func (e *env) query(t *testing.T, body string) *nats.Msg {
	t.Helper()
	msg, err := e.nc.Request("tt.query.m", []byte(body), 30*time.Second)
	require.NoError(t, err)
	return msg
}

func requireFailed(t *testing.T, msg *nats.Msg, code string) {
	t.Helper()
	require.Equal(t, "failed", msg.Header.Get("Tt-Status"), "body: %s", msg.Data)
	require.Equal(t, code, msg.Header.Get("Tt-Error-Code"), "body: %s", msg.Data)
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	require.NoError(t, json.Unmarshal(msg.Data, &e))
	require.Equal(t, code, e.Error.Code)
	require.NotEmpty(t, e.Error.Message)
}

func TestFormats(t *testing.T) {
	t.Parallel()
	e := start(t, 5, query.Config{})
	const q = `"sql":"select i, name from t where i < $1 order by i","params":[3]`

	msg := e.query(t, `{`+q+`}`)
	require.Equal(t, "application/json", msg.Header.Get("Content-Type"))
	require.Equal(t, "1", msg.Header.Get("Tt-Version"))
	require.Equal(t, "3", msg.Header.Get("Tt-Rows"))
	require.Equal(t, "1", msg.Header.Get("Tt-Pages"))
	require.Empty(t, msg.Header.Get("Tt-Result-Id"))
	require.JSONEq(t, `[{"i":0,"name":"name-0"},{"i":1,"name":"name-1"},{"i":2,"name":"name-2"}]`, string(msg.Data))

	msg = e.query(t, `{`+q+`,"format":"ndjson"}`)
	require.Equal(t, "application/x-ndjson", msg.Header.Get("Content-Type"))
	require.Equal(t, "{\"i\":0,\"name\":\"name-0\"}\n{\"i\":1,\"name\":\"name-1\"}\n{\"i\":2,\"name\":\"name-2\"}\n", string(msg.Data))

	msg = e.query(t, `{`+q+`,"format":"csv"}`)
	require.Equal(t, "text/csv", msg.Header.Get("Content-Type"))
	recs, err := csv.NewReader(bytes.NewReader(msg.Data)).ReadAll()
	require.NoError(t, err)
	require.Equal(t, [][]string{{"i", "name"}, {"0", "name-0"}, {"1", "name-1"}, {"2", "name-2"}}, recs)

	msg = e.query(t, `{`+q+`,"format":"arrow"}`)
	require.Equal(t, "application/vnd.apache.arrow.stream", msg.Header.Get("Content-Type"))
	rd, err := ipc.NewReader(bytes.NewReader(msg.Data))
	require.NoError(t, err)
	var n int64
	for rd.Next() {
		n += rd.RecordBatch().NumRows()
	}
	require.NoError(t, rd.Err())
	require.Equal(t, int64(3), n)
	rd.Release()

	msg = e.query(t, `{"sql":"select * from t where false"}`)
	require.Equal(t, "0", msg.Header.Get("Tt-Rows"))
	require.JSONEq(t, `[]`, string(msg.Data))

	requireFailed(t, e.query(t, `{`+q+`,"format":"xml"}`), "invalid_argument")
	requireFailed(t, e.query(t, `not json`), "invalid_argument")
	requireFailed(t, e.query(t, `{"sql":"select * from t","version":2}`), "not_found")
	requireFailed(t, e.query(t, `{"sql":"select * from t","min_seq":11,"timeout_ms":300}`), "deadline_exceeded")
}

func TestPages(t *testing.T) {
	t.Parallel()
	e := start(t, 25_000, query.Config{})
	msg := e.query(t, `{"sql":"select i from t order by i","format":"csv","page_rows":10000}`)
	require.Equal(t, "3", msg.Header.Get("Tt-Pages"))
	require.Equal(t, "1", msg.Header.Get("Tt-Page"))
	require.Equal(t, "25000", msg.Header.Get("Tt-Rows"))
	id := msg.Header.Get("Tt-Result-Id")
	require.NotEmpty(t, id)

	var got []int
	pages := [][]byte{msg.Data}
	for page := 2; page <= 3; page++ {
		meta, b, err := e.results.Get(context.Background(), id, page)
		require.NoError(t, err)
		require.Equal(t, 3, meta.Pages)
		pages = append(pages, b)
	}
	for _, p := range pages {
		recs, err := csv.NewReader(bytes.NewReader(p)).ReadAll()
		require.NoError(t, err)
		require.Equal(t, []string{"i"}, recs[0], "every page has its header")
		for _, r := range recs[1:] {
			n, err := strconv.Atoi(r[0])
			require.NoError(t, err)
			got = append(got, n)
		}
	}
	require.Len(t, got, 25_000)
	for i, n := range got {
		require.Equal(t, i, n)
	}
	_, _, err := e.results.Get(context.Background(), id, 4)
	require.Error(t, err)
}

// TestPageBytes splits a page that would be larger than a message may be.
func TestPageBytes(t *testing.T) {
	t.Parallel()
	e := start(t, 2000, query.Config{MaxPageBytes: 16 << 10})
	msg := e.query(t, `{"sql":"select i, repeat('x', 100) as pad from t order by i","format":"ndjson"}`)
	pages, err := strconv.Atoi(msg.Header.Get("Tt-Pages"))
	require.NoError(t, err)
	require.Greater(t, pages, 1)
	require.LessOrEqual(t, len(msg.Data), 16<<10)
	total := strings.Count(string(msg.Data), "\n")
	for p := 2; p <= pages; p++ {
		_, b, err := e.results.Get(context.Background(), msg.Header.Get("Tt-Result-Id"), p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(b), 16<<10)
		total += strings.Count(string(b), "\n")
	}
	require.Equal(t, 2000, total)
}

// TestHostileSQL: every way out of the version gets a clear error, changes
// nothing, and the executor answers the next query.
func TestHostileSQL(t *testing.T) {
	t.Parallel()
	e := start(t, 10, query.Config{MemoryLimit: "64MB", Timeout: time.Minute})
	cases := []struct {
		name, sql, code string
		timeoutMs       int
		// says is a part of the error message, where the code alone could
		// come from another cause.
		says string
	}{
		{"read a local file", "select * from read_csv('/etc/passwd')", "permission_denied", 0, ""},
		{"read a local file as text", "select * from read_text('/etc/hostname')", "permission_denied", 0, ""},
		{"copy to a file", "copy t to '/tmp/stolen.csv'", "permission_denied", 0, ""},
		{"attach", "attach '/tmp/other.duckdb' as o", "permission_denied", 0, ""},
		{"install", "install httpfs", "permission_denied", 0, ""},
		{"load", "load httpfs", "permission_denied", 0, ""},
		{"set", "set threads = 8", "permission_denied", 0, ""},
		{"reset", "reset memory_limit", "permission_denied", 0, ""},
		{"getenv", "select getenv('HOME')", "permission_denied", 0, "getenv"},
		{"several statements", "select 1; select 2", "invalid_argument", 0, ""},
		{"a mutation", "insert into t values (99, 'x')", "permission_denied", 0, ""},
		{"a table that does not exist", "select * from nope", "sql_error", 0, ""},
		{"past the deadline", `select count(*) from range(100000000000) a`, "deadline_exceeded", 0, "deadline"},
		// A deadline far beyond what the allocation needs: the memory limit
		// must be what stops it, even on a loaded machine.
		{"past the memory limit", "select list(i) from range(200000000) r(i)", "sql_error", 60_000, "Out of Memory"},
	}
	for _, c := range cases {
		timeout := c.timeoutMs
		if timeout == 0 {
			timeout = 1000
		}
		body, err := json.Marshal(map[string]any{"sql": c.sql, "timeout_ms": timeout})
		require.NoError(t, err)
		msg := e.query(t, string(body))
		requireFailed(t, msg, c.code)
		require.Contains(t, string(msg.Data), c.says, c.name)
		// The executor is still there, and the version unchanged.
		msg = e.query(t, `{"sql":"select count(*) as n from t"}`)
		require.JSONEq(t, `[{"n":10}]`, string(msg.Data), "after %s", c.name)
	}
}

// TestPinsOpenVersions: a version stays pinned while the executor has it
// open, and is unpinned once idle.
func TestPinsOpenVersions(t *testing.T) {
	t.Parallel()
	e := start(t, 3, query.Config{IdleClose: 300 * time.Millisecond})
	pinned := func() bool {
		p, err := catalog.Pinned(context.Background(), e.pins, "m", 1)
		require.NoError(t, err)
		return p
	}
	require.False(t, pinned())
	msg := e.query(t, `{"sql":"select count(*) as n from t"}`)
	require.JSONEq(t, `[{"n":3}]`, string(msg.Data))
	require.True(t, pinned())
	require.Eventually(t, func() bool { return !pinned() }, 10*time.Second, 50*time.Millisecond)
	// Closed and unpinned, it opens again on demand.
	msg = e.query(t, `{"sql":"select count(*) as n from t"}`)
	require.JSONEq(t, `[{"n":3}]`, string(msg.Data))
}

// A version a holder reserved and abandoned is never read, even with a
// folder: it may be incomplete, and its writer may still change it.
func TestAbandonedVersionIsNotRead(t *testing.T) {
	t.Parallel()
	e := start(t, 3, query.Config{})
	ctx := context.Background()
	v1, err := e.blobs.Get(ctx, blob.Key("m", 1, blob.DuckDBFile))
	require.NoError(t, err)
	for _, v := range []uint64{2, 3} {
		_, err := e.blobs.Put(ctx, blob.Key("m", v, blob.DuckDBFile), bytes.NewReader(v1))
		require.NoError(t, err)
	}
	spec, rev, err := catalog.GetModel(ctx, e.models, "m")
	require.NoError(t, err)
	spec.Version, spec.AbandonedVersions = 3, []uint64{2}
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = e.models.Update(ctx, "m", b, rev)
	require.NoError(t, err)

	requireFailed(t, e.query(t, `{"sql":"select count(*) from t","version":2}`), "not_found")
	msg := e.query(t, `{"sql":"select count(*) AS n from t","version":3}`)
	require.Empty(t, msg.Header.Get("Tt-Error-Code"), "body: %s", msg.Data)
}
