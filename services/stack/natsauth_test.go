package stack_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/authtest"
	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/worker"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/stack"
)

// runSecured runs the whole stack with the policy of file, and returns
// it and a connect of the authtest principals.
func runSecured(t *testing.T, file string) (*running, authtest.Connect) {
	holder, err := auth.NewHolder(file)
	require.NoError(t, err)
	return runWithPolicy(t, holder)
}

func runWithPolicy(t *testing.T, holder *auth.Holder) (*running, authtest.Connect) {
	st := runStack(t, stack.Config{
		Services: stack.AllServices,
		Data:     t.TempDir(),
		HTTPAddr: "127.0.0.1:0",
		Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 4, Memory: 2 << 30, Threads: 1},
		Auth:     holder,
	})
	connect := func(t *testing.T, principal string, opts ...nats.Option) *nats.Conn {
		nc, err := nats.Connect(st.NATSURL, append(opts, nats.UserInfo(principal, authtest.Password(principal)))...)
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		return nc
	}
	return st, connect
}

// rootDo sends an HTTP request to the gateway as authtest.Root.
func rootDo(t *testing.T, st *running, method, path, body string) {
	t.Helper()
	res := rootRequest(t, st, method, path, body, "")
	require.Less(t, res.code, 300, "%s %s: %s", method, path, res.body)
}

// TestEmbeddedServerEnforcesThePolicy runs the NATS permission matrix
// against `up --auth`'s embedded server.
func TestEmbeddedServerEnforcesThePolicy(t *testing.T) {
	t.Parallel()
	st, connect := runSecured(t, authtest.WritePolicy(t))
	for _, m := range []string{"sales", "hr"} {
		rootDo(t, st, http.MethodPost, "/v1/models", `{"id":"`+m+`"}`)
	}
	rootDo(t, st, http.MethodPut, "/v1/models/sales/functions/describe", `{"kind":"compute","handler":"describe","capabilities":["go"]}`)
	rootDo(t, st, http.MethodPut, "/v1/models/sales/functions/render", `{"kind":"compute","handler":"describe","capabilities":["gpu"]}`)
	// The users follow the catalog once the watch has seen it.
	require.Eventually(t, func() bool { return strings.Contains(st.logs.String(), "models=2 routes=2") },
		60*time.Second, 20*time.Millisecond, "%s", st.logs)
	authtest.NATSMatrix(t, connect, authtest.World{Names: subject.Default(), Own: "sales", Other: "hr",
		Route: function.Route("describe", []string{"go"}), OtherRoute: function.Route("describe", []string{"gpu"})})
}

// TestNATSUsersFollowTheCatalog: a connection made before model sales2
// exists may publish its mutations once it is created, for its grant is
// on sales*: nats-server gives existing connections the reloaded
// permissions.
func TestNATSUsersFollowTheCatalog(t *testing.T) {
	t.Parallel()
	st, connect := runSecured(t, authtest.WritePolicy(t))
	nc := connect(t, authtest.Writer, nats.CustomInboxPrefix(auth.InboxPrefix(authtest.Writer)))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	subj := subject.Default().MutBy("sales2", subject.OpSQL, authtest.Writer)
	publish := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.Publish(ctx, subj, []byte("{}"))
		return err
	}
	require.Error(t, publish(), "before sales2 exists")
	rootDo(t, st, http.MethodPost, "/v1/models", `{"id":"sales2"}`)
	require.Eventually(t, func() bool { return publish() == nil }, 60*time.Second, 50*time.Millisecond)
	require.Zero(t, nc.Stats().Reconnects, "the same connection")
}

// TestWorkerSkipsRefusedRoutes: a worker of capabilities go and gpu,
// whose grant covers go only, binds the route of go and skips the others
// with a warning, under its principal's inbox prefix.
func TestWorkerSkipsRefusedRoutes(t *testing.T) {
	t.Parallel()
	st, _ := runSecured(t, authtest.WritePolicy(t))
	rootDo(t, st, http.MethodPost, "/v1/models", `{"id":"sales"}`)
	rootDo(t, st, http.MethodPut, "/v1/models/sales/functions/describe", `{"kind":"compute","handler":"describe","capabilities":["go"]}`)
	require.Eventually(t, func() bool { return strings.Contains(st.logs.String(), "models=1 routes=1") },
		60*time.Second, 20*time.Millisecond, "%s", st.logs)

	nc, err := worker.Connect(st.NATSURL, natsboot.Credentials{User: authtest.Worker, Password: authtest.Password(authtest.Worker)}, authtest.Worker)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	compute, err := js.KeyValue(ctx, subject.Default().ComputeBucket())
	require.NoError(t, err)
	logs := &natstest.LogBuffer{}
	w, err := worker.New(worker.Config{ID: "w-1", Capabilities: []string{"go", "gpu"}, Handlers: map[string]worker.Handler{
		"describe": func(context.Context, *worker.Input) (worker.Output, error) { return worker.Output{}, nil },
	}}, worker.Deps{JS: js, Compute: compute, Log: slog.New(slog.NewTextHandler(logs, nil))})
	require.NoError(t, err)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { close(ready) }) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("worker stopped: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		t.Fatalf("worker not ready:\n%s", logs)
	}
	require.Equal(t, 2, strings.Count(logs.String(), "route skipped"), "%s", logs)
	require.Contains(t, logs.String(), "route=describe@gpu")
	require.Contains(t, logs.String(), "route=describe@go+gpu")
}

// TestNATSUsersFollowThePolicy: after a reload of the policy, a new
// principal of an nkey may connect, an existing connection of a principal
// given write may publish mutations, and the connection of a user no
// longer in the policy is closed.
func TestNATSUsersFollowThePolicy(t *testing.T) {
	t.Parallel()
	file := authtest.WritePolicy(t)
	holder, err := auth.NewHolder(file)
	require.NoError(t, err)
	st, connect := runWithPolicy(t, holder)
	rootDo(t, st, http.MethodPost, "/v1/models", `{"id":"sales"}`)
	nc := connect(t, authtest.Reader, nats.CustomInboxPrefix(auth.InboxPrefix(authtest.Reader)))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	subj := subject.Default().MutBy("sales", subject.OpSQL, authtest.Reader)
	publish := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.Publish(ctx, subj, []byte("{}"))
		return err
	}
	require.Error(t, publish(), "a reader")

	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	seedFile := filepath.Join(t.TempDir(), "robot.nk")
	require.NoError(t, os.WriteFile(seedFile, seed, 0o600))
	doc, err := os.ReadFile(file)
	require.NoError(t, err)
	readGrant := "  - {models: [\"sales*\"], roles: [read]}"
	require.Contains(t, string(doc), readGrant)
	doc = bytes.Replace(doc, []byte(readGrant), []byte("  - {models: [\"sales*\"], roles: [read, write]}"), 1)
	// The admin's user is renamed: its connection is closed.
	admin := connect(t, authtest.Admin)
	adminUser := "nats: {user: " + authtest.Admin + ","
	require.Contains(t, string(doc), adminUser)
	doc = bytes.Replace(doc, []byte(adminUser), []byte("nats: {user: renamed,"), 1)
	doc = append(doc, "- name: robot\n  nats: {nkey: "+pub+"}\n  allow:\n  - {models: [sales], roles: [read]}\n"...)
	require.NoError(t, os.WriteFile(file, doc, 0o600))
	require.NoError(t, holder.Reload())

	require.Eventually(t, func() bool { return publish() == nil }, 60*time.Second, 50*time.Millisecond)
	require.Zero(t, nc.Stats().Reconnects, "the same connection")
	require.Eventually(t, func() bool { return !admin.IsConnected() }, 60*time.Second, 20*time.Millisecond)
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	require.NoError(t, err)
	robot, err := nats.Connect(st.NATSURL, opt, nats.CustomInboxPrefix(auth.InboxPrefix("robot")))
	require.NoError(t, err)
	defer robot.Close()
	_, err = robot.Request(subject.Default().Query("sales"), []byte(`{"sql": "select 1"}`), 30*time.Second)
	require.NoError(t, err)
}
