package gateway

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// testEnv is a gateway over an embedded JetStream server and a blob
// directory (or the store a configure func sets), served by httptest.
type testEnv struct {
	nats   *natstest.Env
	names  subject.Names
	models jetstream.KeyValue
	owners jetstream.KeyValue
	pins   jetstream.KeyValue
	// functions is tt_functions.
	functions jetstream.KeyValue
	calls     jetstream.KeyValue
	compute   jetstream.KeyValue
	blobs     blob.Store
	mut       jetstream.Stream
	ntf       jetstream.Stream
	url       string
}

func start(t *testing.T, configure ...func(*Config, *Deps)) *testEnv {
	t.Helper()
	ctx := context.Background()
	env := &testEnv{nats: natstest.Start(t), names: subject.Default()}
	js := env.nats.JS
	var err error
	env.models, err = js.KeyValue(ctx, env.names.ModelsBucket())
	require.NoError(t, err)
	env.owners, err = js.KeyValue(ctx, env.names.OwnersBucket())
	require.NoError(t, err)
	env.mut, err = js.Stream(ctx, env.names.MutStream())
	require.NoError(t, err)
	env.ntf, err = js.Stream(ctx, env.names.NtfStream())
	require.NoError(t, err)
	env.blobs, err = blob.NewDir(t.TempDir())
	require.NoError(t, err)
	env.pins, err = js.KeyValue(ctx, env.names.PinsBucket())
	require.NoError(t, err)
	env.calls, err = js.KeyValue(ctx, env.names.CallsBucket())
	require.NoError(t, err)
	env.compute, err = js.KeyValue(ctx, env.names.ComputeBucket())
	require.NoError(t, err)
	env.functions, err = js.KeyValue(ctx, env.names.FunctionsBucket())
	require.NoError(t, err)
	cfg := Config{Names: env.names}
	deps := Deps{NC: env.nats.Conn, JS: js, Models: env.models, Owners: env.owners, Pins: env.pins, Functions: env.functions, Blobs: env.blobs,
		Calls: env.calls, Compute: env.compute}
	for _, c := range configure {
		c(&cfg, &deps)
	}
	env.blobs = deps.Blobs
	g, err := New(cfg, deps)
	require.NoError(t, err)
	srv := httptest.NewServer(g.Handler())
	t.Cleanup(srv.Close)
	env.url = srv.URL
	return env
}

// response is an HTTP answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// send makes a request; header holds key, value pairs.
func (e *testEnv) send(t *testing.T, method, path string, body []byte, header ...string) response {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	return e.sendReader(t, method, path, r, header...)
}

func (e *testEnv) sendReader(t *testing.T, method, path string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, body)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// errorCode decodes an error answer and returns its code.
func errorCode(t *testing.T, r response) string {
	t.Helper()
	var reply teatreev1.ErrorReply
	require.NoError(t, wire.Unmarshal(r.body, &reply), "body %s", r.body)
	require.NotEmpty(t, reply.GetError().GetMessage(), "body %s", r.body)
	return reply.GetError().GetCode()
}

// requireError asserts an error answer with status and code.
func requireError(t *testing.T, r response, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.status, "body %s", r.body)
	require.Equal(t, "application/json", r.header.Get("Content-Type"))
	require.Equal(t, code, errorCode(t, r))
}

// createModel creates a model through the API.
func (e *testEnv) createModel(t *testing.T, id string) {
	t.Helper()
	r := e.send(t, http.MethodPost, "/v1/models", []byte(`{"id":"`+id+`"}`), "Content-Type", "application/json")
	require.Equal(t, http.StatusCreated, r.status, "body %s", r.body)
}

// mutCount is the number of messages in TT_MUT.
func (e *testEnv) mutCount(t *testing.T) uint64 {
	t.Helper()
	info, err := e.mut.Info(context.Background())
	require.NoError(t, err)
	return info.State.Msgs
}

func TestHealth(t *testing.T) {
	t.Parallel()
	notReady := errors.New("node: not connected yet")
	var failing atomic.Bool
	env := start(t, func(_ *Config, d *Deps) {
		d.Ready = func() error {
			if failing.Load() {
				return notReady
			}
			return nil
		}
	})

	r := env.send(t, http.MethodGet, "/healthz", nil)
	require.Equal(t, http.StatusOK, r.status)
	r = env.send(t, http.MethodGet, "/readyz", nil)
	require.Equal(t, http.StatusOK, r.status)

	failing.Store(true)
	r = env.send(t, http.MethodGet, "/readyz", nil)
	requireError(t, r, http.StatusServiceUnavailable, "unavailable")
	require.Contains(t, string(r.body), notReady.Error())
}

func TestRouteErrors(t *testing.T) {
	t.Parallel()
	env := start(t)

	r := env.send(t, http.MethodGet, "/v2/nothing", nil)
	requireError(t, r, http.StatusNotFound, "not_found")

	r = env.send(t, http.MethodPut, "/v1/models", []byte(`{}`))
	requireError(t, r, http.StatusMethodNotAllowed, "invalid_argument")
	require.Contains(t, r.header.Get("Allow"), http.MethodPost)
}

func TestNewChecksConfigAndDeps(t *testing.T) {
	t.Parallel()
	_, err := New(Config{}, Deps{})
	require.ErrorContains(t, err, "nats connection: not set")

	_, err = New(Config{MaxBody: -1}, Deps{})
	require.ErrorContains(t, err, "max body -1")
}

func TestRunServesUntilCancelled(t *testing.T) {
	t.Parallel()
	env := natstest.Start(t)
	ctx := context.Background()
	models, err := env.JS.KeyValue(ctx, subject.Default().ModelsBucket())
	require.NoError(t, err)
	owners, err := env.JS.KeyValue(ctx, subject.Default().OwnersBucket())
	require.NoError(t, err)
	blobs, err := blob.NewDir(t.TempDir())
	require.NoError(t, err)
	calls, err := env.JS.KeyValue(ctx, subject.Default().CallsBucket())
	require.NoError(t, err)
	compute, err := env.JS.KeyValue(ctx, subject.Default().ComputeBucket())
	require.NoError(t, err)
	g, err := New(Config{}, Deps{NC: env.Conn, JS: env.JS, Models: models, Owners: owners, Blobs: blobs, Calls: calls, Compute: compute})
	require.NoError(t, err)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}
