package e2e

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServeSeparately runs the services as separate `teatree serve`
// processes against a standalone nats-server: gateway, dispatcher and
// notifier in one, a node in another, sharing only NATS and the blob store.
func TestServeSeparately(t *testing.T) {
	t.Parallel()
	c := newCluster(t)
	// The node starts first: any order must work.
	worker := c.node("worker-1")
	front := c.serve("front", []string{"gateway", "dispatcher", "notifier"})

	createModel(t, c, `{"id":"split","snapshot":{"interval_ms":100}}`)
	_, js := connectNATS(t, c.nats.url())
	publish(t, js, "tt.mut.split.append", "s1", map[string]string{"Tt-Table": "t", "Content-Type": "text/csv"}, []byte("x\n1\n2\n"))
	st, _ := waitNotification(t, js, "split", "s1")
	require.Equal(t, "applied", st.Status, "%+v", st)

	code, body, _ := do(t, http.MethodGet, c.url("/v1/models/split"), "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), `"owner":"worker-1"`)
	require.Eventually(t, func() bool {
		code, _, _ := do(t, http.MethodGet, c.url("/v1/models/split/snapshots/latest/t.parquet"), "", nil)
		return code == http.StatusOK
	}, 30*time.Second, 50*time.Millisecond)
	worker.stopCleanly()
	front.stopCleanly()
}
