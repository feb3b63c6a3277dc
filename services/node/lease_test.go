package node_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestLeaseStartsADBManager(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	early := h.createModel("early")
	late := h.createModel("late")
	h.createModel("elsewhere")
	// A lease held before the node starts (a restarted node resumes it),
	// one granted while it runs, and one of another node.
	h.grant("early", "node-a")
	h.run("node-a")
	h.grant("late", "node-a")
	h.grant("elsewhere", "node-b")

	h.publishSQL("early", "r1", "create table t (x int)")
	h.publishSQL("late", "r2", "create table t (x int)")
	seq := h.publishSQL("elsewhere", "r3", "create table t (x int)")
	for _, c := range []struct{ model, id string }{{"early", "r1"}, {"late", "r2"}} {
		s := h.outcome(c.model, c.id)
		require.Equal(t, subject.StatusApplied, s.GetStatus(), "%s: %v", c.model, s.GetError())
	}
	for _, spec := range []struct {
		id  string
		seq uint64
	}{{"early", early.GetCreatedSeq()}, {"late", late.GetCreatedSeq()}} {
		_, err := os.Stat(filepath.Join(h.dir, spec.id, strconv.FormatUint(spec.seq, 10), "model.duckdb"))
		require.NoError(t, err, "the model's read-write file is under the node's dir")
	}

	require.Never(t, func() bool { return h.findOutcome("elsewhere", "r3") != nil }, time.Second, 50*time.Millisecond,
		"another node's model (seq %d) is not applied here", seq)
	_, err := os.Stat(filepath.Join(h.dir, "elsewhere"))
	require.True(t, os.IsNotExist(err), "%v", err)
}
