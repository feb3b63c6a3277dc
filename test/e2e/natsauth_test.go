package e2e

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/authtest"
)

// TestNodeClientUnderThePolicy: with `up --auth`, the Node.js client,
// connected as the reader with its user, password and inbox prefix, gets
// an answer to a query of its model and a permissions violation for a
// mutation.
func TestNodeClientUnderThePolicy(t *testing.T) {
	dir, err := filepath.Abs("../../examples/node-worker")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@nats-io", "transport-node"))
	require.NoError(t, err, "the Node packages are missing: run `make test-e2e` (it runs npm ci in examples/node-worker)")

	s := startServer(t, "--auth", authtest.WritePolicy(t))
	req, err := http.NewRequest(http.MethodPost, s.url("/v1/models"), bytes.NewBufferString(`{"id":"sales"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+authtest.RootToken)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res.Body.Close()
	require.Equal(t, http.StatusCreated, res.StatusCode)
	// sales matches the reader's glob once the server's users follow it.
	require.Eventually(t, func() bool { return strings.Contains(s.logs.String(), "service=nats models=1 ") },
		60*time.Second, 20*time.Millisecond, "%s", s.logs)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", filepath.Join(dir, "authcheck.mjs"),
		"--nats", s.natsURL(), "--user", authtest.Reader, "--model", "sales")
	node.Env = append(os.Environ(), "TEATREE_NATS_PASSWORD="+authtest.Password(authtest.Reader))
	out, err := node.CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "query answered:")
	require.Contains(t, string(out), `mutation refused: Permissions Violation for Publish to "tt.mut.sales.sql.reader"`)
}
