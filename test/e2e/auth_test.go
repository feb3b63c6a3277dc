package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/auth"
)

// asToken sends an HTTP request with a bearer token and returns its status
// and body.
func asToken(t *testing.T, token, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestAuthPolicyReloadsOnSIGHUP starts `teatree up --auth`, uses it with the
// client commands' --token, then revokes a token by editing the file and
// sending SIGHUP: the same process refuses it from then on.
func TestAuthPolicyReloadsOnSIGHUP(t *testing.T) {
	t.Parallel()
	policy := func(principals ...string) []byte {
		doc := "principals:\n"
		for _, name := range principals {
			doc += "  - name: " + name + "\n    tokens: [\"" + auth.HashToken("tok-"+name) + "\"]\n" +
				"    allow: [{models: [\"*\"], roles: [admin, read]}]\n"
		}
		return []byte(doc)
	}
	file := filepath.Join(t.TempDir(), "policy.yaml")
	require.NoError(t, os.WriteFile(file, policy("root", "gone"), 0o600))
	s := startServer(t, "--auth", file)

	status, body := asToken(t, "", http.MethodGet, s.url("/v1/models"))
	require.Equal(t, http.StatusUnauthorized, status, body)
	require.Contains(t, body, "unauthenticated")

	cli := func(token string, args ...string) ([]byte, error) {
		cmd := exec.Command(binary, append(args, "--server", s.url(""))...)
		cmd.Env = append(os.Environ(), "TEATREE_TOKEN="+token)
		return cmd.CombinedOutput()
	}
	out, err := cli("tok-root", "model", "create", "sales")
	require.NoError(t, err, "%s", out)
	out, err = cli("tok-gone", "model", "list")
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "sales")
	out, err = cli("wrong", "model", "list")
	require.Error(t, err)
	require.Contains(t, string(out), "unauthenticated")

	require.NoError(t, os.WriteFile(file, policy("root"), 0o600))
	s.signal(syscall.SIGHUP)
	require.Eventually(t, func() bool {
		status, _ := asToken(t, "tok-gone", http.MethodGet, s.url("/v1/models"))
		return status == http.StatusUnauthorized
	}, 30*time.Second, 50*time.Millisecond, "the revoked token is refused after SIGHUP")
	require.True(t, s.alive(), "no restart")
	status, body = asToken(t, "tok-root", http.MethodGet, s.url("/v1/models/sales"))
	require.Equal(t, http.StatusOK, status, body)
}
