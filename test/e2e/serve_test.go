package e2e

import (
	"net/http"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

// TestServeSeparately runs the services as separate `teatree serve`
// processes against an external NATS server: gateway, dispatcher and
// notifier in one, a node in another, sharing only NATS and the blob store.
func TestServeSeparately(t *testing.T) {
	t.Parallel()
	ns, err := natsboot.StartServer(natsboot.ServerConfig{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(ns.Shutdown)
	blobs := t.TempDir()
	httpAddr := freeAddr(t)

	spawn := func(args ...string) *server {
		s := &server{t: t, httpAddr: httpAddr, logs: &natstest.LogBuffer{}}
		s.cmd = exec.Command(binary, append([]string{"serve", "--nats", ns.ClientURL(), "--blobs", blobs, "--lease-ttl", "3s"}, args...)...)
		s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
		require.NoError(t, s.cmd.Start())
		t.Cleanup(func() {
			s.stop()
			if t.Failed() {
				t.Logf("logs of %v:\n%s", args, s.logs.String())
			}
		})
		return s
	}
	// The node starts first: any order must work.
	worker := spawn("node", "--data", filepath.Join(t.TempDir(), "w1"), "--node-id", "worker-1")
	front := spawn("gateway", "dispatcher", "notifier", "--data", t.TempDir(), "--http", httpAddr)
	require.Eventually(t, func() bool {
		resp, err := http.Get(front.url("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, time.Minute, 50*time.Millisecond)

	createModel(t, front, `{"id":"split","snapshot":{"interval_ms":100}}`)
	front.natsAddr = ns.Addr().String()
	_, js := front.connect(t)
	publish(t, js, "tt.mut.split.append", "s1", map[string]string{"Tt-Table": "t", "Content-Type": "text/csv"}, []byte("x\n1\n2\n"))
	st, _ := waitNotification(t, js, "split", "s1")
	require.Equal(t, "applied", st.Status, "%+v", st)

	code, body, _ := do(t, http.MethodGet, front.url("/v1/models/split"), "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"owner":"worker-1"`)
	require.Eventually(t, func() bool {
		code, _, _ := do(t, http.MethodGet, front.url("/v1/models/split/snapshots/latest/t.parquet"), "", nil)
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	worker.stopCleanly()
	front.stopCleanly()
}
