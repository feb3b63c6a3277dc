package dbmanager_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
)

// Consecutive NDJSON appends are applied as one statement; every request
// must still end exactly as it would alone. The same requests go to two
// models: one applies them in one group commit (combined), the other one
// request per transaction. Outcomes and table contents must be equal.
func TestCombinedAppendsEndAsTheyWouldAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	reqs := []mutation{
		sqlMutation("create", `{"sql": "CREATE TABLE t (n BIGINT, s VARCHAR)"}`),
		ndjsonRows(subject.OpAppend, "t", "two", `{"n": 1, "s": "a"}`, `{"n": 2, "s": "b"}`),
		ndjsonRows(subject.OpAppend, "t", "one", `{"n": 3, "s": "c"}`),
		ndjsonRows(subject.OpAppend, "t", "wrong-type", `{"n": "three", "s": "c"}`),
		ndjsonRows(subject.OpAppend, "t", "blank-lines", ``, `{"n": 4}`, ``, `  `),
		ndjsonRows(subject.OpAppend, "t", "new-column", `{"n": 5, "extra": true}`),
		ndjsonRows(subject.OpAppend, "t", "malformed", `{"n": 6,`),
		ndjsonRows(subject.OpAppend, "t", "two-on-a-line", `{"n": 7} {"n": 8}`),
		ndjsonRows(subject.OpAppend, "t", "only-blank", ``),
		ndjsonRows(subject.OpAppend, "t", "float-to-int", `{"n": 9.0, "s": "d"}`),
		ndjsonRows(subject.OpAppend, "other", "new-table-1", `{"x": 1}`),
		ndjsonRows(subject.OpAppend, "other", "new-table-2", `{"x": 2, "y": 3}`),
		ndjsonRows(subject.OpAppend, "other", "new-table-3", `{"x": 4}`),
		ndjsonRows(subject.OpAppend, "t", "last", `{"s": "e", "n": 10}`),
	}
	type result struct {
		outcomes map[string]string
		rows     []string
	}
	run := func(model string, opts ...func(*dbmanager.Config)) result {
		l := h.createModel(t, &teatreev1.ModelSpec{Id: model})
		log := h.watchOutcomes(t, model)
		for _, m := range reqs {
			m.id = model + "-" + m.id
			h.publish(t, model, m)
		}
		r := h.start(t, l, t.TempDir(), opts...)
		ids := make([]string, len(reqs))
		for i, m := range reqs {
			ids[i] = model + "-" + m.id
		}
		got := log.await(t, ids...)
		res := result{outcomes: map[string]string{}}
		for i, m := range reqs {
			o := got[ids[i]]
			if o.GetStatus() == subject.StatusApplied {
				res.outcomes[m.id] = fmt.Sprintf("applied %d", o.GetRowsAffected())
			} else {
				res.outcomes[m.id] = "failed " + o.GetError().GetCode()
			}
		}
		t.Logf("%s: %d requests in %d outcome events", model, len(reqs), log.eventCount())
		dir := r.dir
		r.stop(t)
		db := openCopy(t, localFile(dir))
		res.rows = queryStrings(t, db, "SELECT concat_ws('|', n, s) FROM t ORDER BY n")
		res.rows = append(res.rows, queryStrings(t, db, "SELECT concat_ws('|', x) FROM other ORDER BY x")...)
		return res
	}
	combined := run("combined")
	alone := run("alone", func(c *dbmanager.Config) { c.MaxBatchMessages = 1 })
	require.Equal(t, alone, combined)
	require.Equal(t, "applied 2", combined.outcomes["two"])
	require.Equal(t, "applied 1", combined.outcomes["last"])
	require.Contains(t, combined.outcomes["wrong-type"], "failed")
}
