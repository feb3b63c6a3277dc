package worker_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/pkg/worker/workertest"
)

// blobServer serves a blob directory as pre-signed URLs would: GET reads
// a key, PUT writes one (with a length, as S3 wants).
type blobServer struct {
	dir  string
	mu   sync.Mutex
	puts map[string]string // key → content type
}

func (b *blobServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := filepath.Join(b.dir, filepath.FromSlash(strings.TrimPrefix(r.URL.Path, "/")))
	switch r.Method {
	case http.MethodGet:
		http.ServeFile(w, r, path)
	case http.MethodPut:
		if r.ContentLength < 0 {
			http.Error(w, "length required", http.StatusLengthRequired)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err == nil {
			err = os.MkdirAll(filepath.Dir(path), 0o755)
		}
		if err == nil {
			err = os.WriteFile(path, body, 0o644)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		b.mu.Lock()
		b.puts[strings.TrimPrefix(r.URL.Path, "/")] = r.Header.Get("Content-Type")
		b.mu.Unlock()
	default:
		http.Error(w, "no", http.StatusMethodNotAllowed)
	}
}

func TestHTTPInputsAndResults(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	blobs := &blobServer{dir: e.Blobs, puts: map[string]string{}}
	srv := httptest.NewServer(blobs)
	t.Cleanup(srv.Close)
	parquet := func(ctx context.Context, in *worker.Input) (worker.Output, error) {
		path, err := in.Parquet(ctx, "orders")
		if err != nil {
			return worker.Output{}, err
		}
		rd, err := in.Query(ctx, `SELECT count(*) AS n, (SELECT count(*) FROM read_parquet(?)) AS p FROM orders`, path)
		if err != nil {
			return worker.Output{}, err
		}
		return worker.Arrow(rd), nil
	}
	e.Start(t, worker.Config{ID: "w-1", Handlers: map[string]worker.Handler{"parquet": parquet}})

	job := e.Job("h1", "parquet", nil, 3)
	byURL := func(o *calls.Object) { o.URL = srv.URL + "/" + o.Key }
	byURL(&job.Input.DuckDB)
	for i := range job.Input.Tables {
		byURL(&job.Input.Tables[i].Parquet)
	}
	for i := range job.Results {
		job.Results[i].URL = srv.URL + "/" + job.Results[i].Key
	}
	e.Queue(t, job)
	done := evs.WaitFor(t, "h1", "sales.h1.1.done")
	require.EqualValues(t, 1, done.Rows)
	blobs.mu.Lock()
	require.Equal(t, map[string]string{"calls/sales/h1/1": "application/vnd.apache.arrow.stream"}, blobs.puts)
	blobs.mu.Unlock()
	rows, cols := workertest.ReadArrow(t, filepath.Join(e.Blobs, "calls", "sales", "h1", "1"))
	require.EqualValues(t, 1, rows)
	require.Equal(t, []string{"n", "p"}, cols)
}

func TestLongJobIsKeptInProgress(t *testing.T) {
	t.Parallel()
	e := workertest.New(t)
	evs := e.Watch(t)
	// Three times ack_wait: without +WPI the job would be delivered again.
	long := func(ctx context.Context, _ *worker.Input) (worker.Output, error) {
		select {
		case <-time.After(6 * time.Second):
			return worker.JSON(nil), nil
		case <-ctx.Done():
			return worker.Output{}, ctx.Err()
		}
	}
	e.Start(t, worker.Config{ID: "w-1", Slots: 2, AckWait: 2 * time.Second, Handlers: map[string]worker.Handler{"long": long}})
	e.Queue(t, e.Job("l1", "long", nil, 3))
	evs.WaitFor(t, "l1", "sales.l1.1.done")
	for _, ev := range evs.Of("l1") {
		require.Equal(t, 1, ev.Attempt, "%s", ev.ID)
	}
	c, err := e.JS.Consumer(context.Background(), workertest.Names.CallStream(), calls.Consumer("long@go"))
	require.NoError(t, err)
	info, err := c.Info(context.Background())
	require.NoError(t, err)
	require.Zero(t, info.NumRedelivered)
}
