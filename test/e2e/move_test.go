package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMoveUnderLoad runs two `teatree serve node` processes beside a
// gateway, a dispatcher and a notifier, and moves a few models back and
// forth between the nodes with `teatree model move` while clients keep
// appending uniquely numbered rows to them. Afterwards every acknowledged
// request is applied exactly once, with exactly one notification, and
// every model's newest version holds exactly the acknowledged rows.
func TestMoveUnderLoad(t *testing.T) {
	t.Parallel()
	const fresh = 60 // acknowledgements per model between two moves
	const rounds = 4
	c := newCluster(t)
	procs := []*proc{c.nats.proc, c.serve("gateway", []string{"gateway"}), c.serve("dispatcher", []string{"dispatcher"}),
		c.serve("notifier", []string{"notifier"}), c.node("n1"), c.node("n2")}
	_, js := connectNATS(t, c.nats.url())
	models := []string{"move-a", "move-b", "move-c"}
	ledgers := make([]*ledger, len(models))
	budgets := make([]*atomic.Int64, len(models))
	var stop atomic.Bool
	deadline := time.Now().Add(3 * time.Minute)
	var waits []func()
	for i, model := range models {
		createModel(t, c, fmt.Sprintf(`{"id":%q,"snapshot":{"interval_ms":200}}`, model))
		l, budget := newLedger(model), &atomic.Int64{}
		ledgers[i], budgets[i] = l, budget
		budget.Store(fresh)
		gate := func() bool {
			for l.acks.Load() >= budget.Load() && !stop.Load() && !l.abort.Load() {
				time.Sleep(5 * time.Millisecond)
			}
			return !stop.Load()
		}
		waits = append(waits, l.publishers(t, 2, natsSender(js, model), gate, deadline))
	}

	for round := range rounds {
		for i, model := range models {
			l := ledgers[i]
			base := l.acks.Load()
			budgets[i].Store(base + fresh)
			// Each move lands while the model's requests flow.
			waitAcks(t, l, base+fresh/2, "before moving "+model)
			from := owner(t, js, model)
			to := "n1"
			if from == "n1" {
				to = "n2"
			}
			mv := moveModel(t, c, model, to)
			require.Equal(t, to, mv.To)
			require.Equal(t, to, owner(t, js, model), "owner of %s after its move", model)
			t.Logf("round %d: moved %s from %q to %s at epoch %d, %d acks", round+1, model, mv.From, to, mv.Epoch, l.acks.Load())
			requireAlive(t, procs...)
		}
	}
	for i, l := range ledgers {
		base := l.acks.Load()
		budgets[i].Store(base + fresh)
		waitAcks(t, l, base+fresh, "after the last move of "+l.model)
	}
	stop.Store(true)
	for _, wait := range waits {
		wait()
	}
	requireAlive(t, procs...)
	for _, l := range ledgers {
		checkExactlyOnce(t, js, c, c.store, l)
	}
}

// move is what `teatree model move` prints.
type move struct {
	Model string `json:"model"`
	From  string `json:"from"`
	To    string `json:"to"`
	Epoch uint64 `json:"epoch"`
}

// moveModel runs `teatree model move MODEL --to NODE` against the gateway.
func moveModel(t *testing.T, c *cluster, model, to string) move {
	t.Helper()
	cmd := exec.Command(binary, "model", "move", model, "--to", to, "--server", c.url(""))
	out, err := cmd.Output()
	var stderr []byte
	if ee, ok := err.(*exec.ExitError); ok {
		stderr = ee.Stderr
	}
	require.NoError(t, err, "teatree model move %s --to %s: %s", model, to, stderr)
	var mv move
	require.NoError(t, json.Unmarshal(out, &mv), string(out))
	require.Equal(t, model, mv.Model)
	require.NotZero(t, mv.Epoch)
	return mv
}
