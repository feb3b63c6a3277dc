package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/authtest"
	"github.com/teatree-dev/teatree/internal/loopback"
	"github.com/teatree-dev/teatree/internal/natsserver"
	"github.com/teatree-dev/teatree/pkg/auth"
)

// TestServeAuthAsTheOperatorRunsIt: the configuration `teatree auth
// issuer` prints, pasted into a nats-server's, with `teatree serve` and
// `teatree serve auth` run as its output says, lets the policy's reader
// query its model and not write it; after the reader is removed from the
// file and serve auth gets SIGHUP, its next connection is refused.
func TestServeAuthAsTheOperatorRunsIt(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	issuer, callout := filepath.Join(dir, "issuer.nk"), filepath.Join(dir, "callout.nk")
	out, err := exec.Command(binary, "auth", "issuer", "--out", issuer, "--callout-out", callout, "--xkey-out", filepath.Join(dir, "xkey.nk")).CombinedOutput()
	require.NoError(t, err, "%s", out)
	m := regexp.MustCompile(`(?s)password \(shown once\): (\S+)\n.*nats-server configuration:\n(.*)`).FindSubmatch(out)
	require.NotNil(t, m, "%s", out)
	password, conf := string(m[1]), m[2]
	srv := natsserver.Start(t, fmt.Sprintf("listen: \"127.0.0.1:-1\"\njetstream {store_dir: %q}\n%s", filepath.Join(dir, "js"), conf))

	policy := authtest.WritePolicy(t)
	httpAddr := net.JoinHostPort(loopback.IP(t), portHTTP)
	services := newProc(t, "teatree serve", binary, []string{"serve", "gateway", "dispatcher", "notifier", "node",
		"--nats", srv.URL, "--nats-user", "teatree", "--auth", policy, "--data", t.TempDir(), "--http", httpAddr},
		readyTeatree("teatree serving", "http://"+httpAddr))
	services.env = []string{"TEATREE_NATS_PASSWORD=" + password}
	services.start()
	callouts := newProc(t, "teatree serve auth", binary, []string{"serve", "auth", "--nats", srv.URL,
		"--nats-nkey-seed", callout, "--auth", policy, "--issuer-seed", issuer, "--xkey-seed", filepath.Join(dir, "xkey.nk")},
		readyTeatree("teatree serving [auth]", ""))
	callouts.start()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("nats-server log:\n%s", srv.Logs)
		}
	})

	req, err := http.NewRequest(http.MethodPost, "http://"+httpAddr+"/v1/models", bytes.NewBufferString(`{"id":"sales"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+authtest.RootToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)

	reader := func() (*nats.Conn, error) {
		return nats.Connect(srv.URL, nats.UserInfo(authtest.Reader, authtest.Password(authtest.Reader)),
			nats.CustomInboxPrefix(auth.InboxPrefix(authtest.Reader)))
	}
	nc, err := reader()
	require.NoError(t, err)
	defer nc.Close()
	_, err = nc.Request("tt.query.sales", []byte(`{"sql": "select 1"}`), 30*time.Second)
	require.NoError(t, err)
	require.NoError(t, nc.Publish("tt.mut.sales.sql.reader", []byte("{}")))
	require.NoError(t, nc.Flush())
	require.Eventually(t, func() bool { return nc.LastError() != nil }, 30*time.Second, 20*time.Millisecond)
	require.ErrorIs(t, nc.LastError(), nats.ErrPermissionViolation)

	doc, err := os.ReadFile(policy)
	require.NoError(t, err)
	user := "nats: {user: " + authtest.Reader + ","
	require.Contains(t, string(doc), user)
	require.NoError(t, os.WriteFile(policy, bytes.Replace(doc, []byte(user), []byte("nats: {user: renamed,"), 1), 0o600))
	callouts.signal(syscall.SIGHUP)
	require.Eventually(t, func() bool {
		nc, err := reader()
		if err == nil {
			nc.Close()
		}
		return err != nil
	}, 30*time.Second, 50*time.Millisecond, "the removed user is refused after SIGHUP")
	_, err = reader()
	require.ErrorIs(t, err, nats.ErrAuthorization)
	require.True(t, callouts.alive(), "no restart")
}
