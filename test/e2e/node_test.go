package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestNodeClient runs test/node/contract.mjs: the contract as a Node.js
// client sees it, with @nats-io/transport-node and @duckdb/node-api.
func TestNodeClient(t *testing.T) {
	t.Parallel()
	dir, err := filepath.Abs("../node")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "node_modules", "@duckdb", "node-api"))
	require.NoError(t, err, "the Node packages are missing: run `make test-e2e` (it runs npm ci in test/node)")
	s := startServer(t)
	cmd := exec.Command("node", "contract.mjs", s.natsURL(), s.url(""), t.TempDir())
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "node contract check failed:\n%s", out)
	require.Contains(t, string(out), "node contract check: ok")
}
