package authcallout_test

import (
	"bytes"
	"context"
	"fmt"
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
	"github.com/teatree-dev/teatree/internal/natsserver"
	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/services/authcallout"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/stack"
)

// servicesPassword is the password of teatree's services' user.
const servicesPassword = "services-secret"

// world is a nats-server started apart, with the callout's configuration
// as teatree auth issuer prints it, teatree's services and the callout
// running against it.
type world struct {
	url     string
	httpURL string
	holder  *auth.Holder
	policy  string
	// robotSeed is the seed file of "robot", a principal of an nkey that
	// may read sales.
	robotSeed string
	calloutLogs,
	stackLogs *natstest.LogBuffer
}

// start starts the world; with xkey the requests are encrypted, and a
// positive userTTL is the callout's UserTTL.
func start(t *testing.T, xkey bool, userTTL time.Duration) *world {
	t.Helper()
	w := &world{policy: authtest.WritePolicy(t), calloutLogs: &natstest.LogBuffer{}, stackLogs: &natstest.LogBuffer{}}
	w.robotSeed = addRobot(t, w.policy)
	issuer, err := nkeys.CreateAccount()
	require.NoError(t, err)
	issuerPub, err := issuer.PublicKey()
	require.NoError(t, err)
	calloutPub, calloutSeed := newUser(t)
	conf := authcallout.ServerConfig{Account: authcallout.DefaultAccount, Issuer: issuerPub,
		ServicesPassword: servicesPassword, CalloutNKey: calloutPub}
	cfg := authcallout.Config{Issuer: issuer, UserTTL: userTTL}
	if xkey {
		cfg.XKey, err = nkeys.CreateCurveKeys()
		require.NoError(t, err)
		conf.XKey, err = cfg.XKey.PublicKey()
		require.NoError(t, err)
	}
	srv := natsserver.Start(t, fmt.Sprintf("listen: \"127.0.0.1:-1\"\nserver_name: tt-callout\njetstream {store_dir: %q}\n%s",
		filepath.Join(t.TempDir(), "js"), conf))
	w.url = srv.URL
	w.holder, err = auth.NewHolder(w.policy)
	require.NoError(t, err)
	w.runStack(t)
	w.runCallout(t, cfg, calloutSeed)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("callout log:\n%s\nteatree log:\n%s", w.calloutLogs, w.stackLogs)
		}
	})
	return w
}

// runStack runs teatree's services against the server as its services'
// user, which the server authenticates itself.
func (w *world) runStack(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan stack.Ready, 1)
	done := make(chan error, 1)
	go func() {
		done <- stack.Run(ctx, stack.Config{
			Services: stack.AllServices,
			NATSURL:  w.url,
			NATS:     natsboot.Credentials{User: authcallout.ServicesUser, Password: servicesPassword},
			Data:     t.TempDir(),
			HTTPAddr: "127.0.0.1:0",
			Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 4, Memory: 2 << 30, Threads: 1},
			Auth:     w.holder,
			Log:      slog.New(slog.NewTextHandler(w.stackLogs, nil)),
			OnReady:  func(r stack.Ready) { ready <- r },
		})
	}()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	select {
	case r := <-ready:
		w.httpURL = r.HTTPURL
	case err := <-done:
		done <- err
		t.Fatalf("teatree stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("teatree not ready")
	}
}

// runCallout runs the callout in this process, as its user.
func (w *world) runCallout(t *testing.T, cfg authcallout.Config, seed string) {
	opt, err := nats.NkeyOptionFromSeed(seed)
	require.NoError(t, err)
	nc, err := nats.Connect(w.url, opt)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	svc, err := authcallout.New(cfg, authcallout.Deps{NC: nc, JS: js, Policy: w.holder,
		Log: slog.New(slog.NewTextHandler(w.calloutLogs, nil))})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, func() { close(ready) }) }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	select {
	case <-ready:
	case err := <-done:
		done <- err
		t.Fatalf("callout stopped: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("callout not ready")
	}
}

// connect dials the server as an authtest principal.
func (w *world) connect(t *testing.T, principal string, opts ...nats.Option) *nats.Conn {
	nc, err := nats.Connect(w.url, append(opts, nats.UserInfo(principal, authtest.Password(principal)))...)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// rootDo sends an HTTP request to the gateway as authtest.Root.
func (w *world) rootDo(t *testing.T, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, w.httpURL+path, bytes.NewBufferString(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+authtest.RootToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Less(t, res.StatusCode, 300, "%s %s", method, path)
}

// newUser makes a user nkey, and returns its public key and the file of
// its seed.
func newUser(t *testing.T) (string, string) {
	kp, err := nkeys.CreateUser()
	require.NoError(t, err)
	pub, err := kp.PublicKey()
	require.NoError(t, err)
	seed, err := kp.Seed()
	require.NoError(t, err)
	file := filepath.Join(t.TempDir(), "user.nk")
	require.NoError(t, os.WriteFile(file, seed, 0o600))
	return pub, file
}

// addRobot adds to the policy a principal "robot" of a new nkey that may
// read sales, and returns the file of its seed.
func addRobot(t *testing.T, policy string) string {
	pub, file := newUser(t)
	f, err := os.OpenFile(policy, os.O_APPEND|os.O_WRONLY, 0)
	require.NoError(t, err)
	_, err = f.WriteString("- name: robot\n  nats: {nkey: " + pub + "}\n  allow:\n  - {models: [sales], roles: [read]}\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	return file
}

// TestCalloutEnforcesThePolicy runs the NATS permission matrix against a
// nats-server started apart, whose every connection but teatree's own is
// decided by the callout, encrypted with an xkey.
func TestCalloutEnforcesThePolicy(t *testing.T) {
	t.Parallel()
	w := start(t, true, 0)
	for _, m := range []string{"sales", "hr"} {
		w.rootDo(t, http.MethodPost, "/v1/models", `{"id":"`+m+`"}`)
	}
	w.rootDo(t, http.MethodPut, "/v1/models/sales/functions/describe", `{"kind":"compute","handler":"describe","capabilities":["go"]}`)
	w.rootDo(t, http.MethodPut, "/v1/models/sales/functions/render", `{"kind":"compute","handler":"describe","capabilities":["gpu"]}`)
	// New connections get the catalog once the callout's watch has seen it.
	require.Eventually(t, func() bool { return strings.Contains(w.calloutLogs.String(), "models=2 routes=2") },
		60*time.Second, 20*time.Millisecond, "%s", w.calloutLogs)
	authtest.NATSMatrix(t, w.connect, authtest.World{Names: subject.Default(), Own: "sales", Other: "hr",
		Route: function.Route("describe", []string{"go"}), OtherRoute: function.Route("describe", []string{"gpu"})})
}

// TestCalloutAuthenticates: an nkey of the policy is let in once it signed
// the server's nonce; a wrong password, an unknown user and no
// credentials are refused, and so is a user removed from the policy by a
// reload. The requests are not encrypted.
func TestCalloutAuthenticates(t *testing.T) {
	t.Parallel()
	w := start(t, false, 0)
	w.rootDo(t, http.MethodPost, "/v1/models", `{"id":"sales"}`)

	opt, err := nats.NkeyOptionFromSeed(w.robotSeed)
	require.NoError(t, err)
	robot, err := nats.Connect(w.url, opt, nats.CustomInboxPrefix(auth.InboxPrefix("robot")))
	require.NoError(t, err)
	defer robot.Close()
	_, err = robot.Request(subject.Default().Query("sales"), []byte(`{"sql": "select 1"}`), 30*time.Second)
	require.NoError(t, err)

	for name, opts := range map[string][]nats.Option{
		"wrong password": {nats.UserInfo(authtest.Reader, "wrong")},
		"unknown user":   {nats.UserInfo("nobody", "x")},
		"no credentials": nil,
	} {
		_, err := nats.Connect(w.url, opts...)
		require.ErrorIs(t, err, nats.ErrAuthorization, name)
	}
	require.Contains(t, w.calloutLogs.String(), `nats user \"nobody\": unknown credentials`)

	// The reader is removed; its next connection is refused.
	doc, err := os.ReadFile(w.policy)
	require.NoError(t, err)
	user := "nats: {user: " + authtest.Reader + ","
	require.Contains(t, string(doc), user)
	require.NoError(t, os.WriteFile(w.policy, bytes.Replace(doc, []byte(user), []byte("nats: {user: renamed,"), 1), 0o600))
	w.connect(t, authtest.Reader).Close()
	require.NoError(t, w.holder.Reload())
	_, err = nats.Connect(w.url, nats.UserInfo(authtest.Reader, authtest.Password(authtest.Reader)))
	require.ErrorIs(t, err, nats.ErrAuthorization)
}

// TestCalloutUserTTL: with a lifetime of the user JWTs, a connection made
// before model sales2 exists is closed when its JWT expires, reconnects,
// and may then publish sales2's mutations, for its grant is on sales*.
func TestCalloutUserTTL(t *testing.T) {
	t.Parallel()
	w := start(t, false, 2*time.Second)
	nc := w.connect(t, authtest.Writer, nats.CustomInboxPrefix(auth.InboxPrefix(authtest.Writer)),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	subj := subject.Default().Mut("sales2", "sql") + "." + authtest.Writer
	publish := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.Publish(ctx, subj, []byte("{}"))
		return err
	}
	require.Error(t, publish(), "before sales2 exists")
	w.rootDo(t, http.MethodPost, "/v1/models", `{"id":"sales2"}`)
	require.Eventually(t, func() bool { return publish() == nil }, 60*time.Second, 100*time.Millisecond)
	require.NotZero(t, nc.Stats().Reconnects, "a new connection")
}
