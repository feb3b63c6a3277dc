package dbmanager_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// A request that fails for its own reasons ends failed without taking the
// rest of its group commit with it; every request gets exactly one outcome,
// in stream order.
func TestGroupCommitIsolatesFailedRequests(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")

	arrow := arrowRows(t, []int64{5, 6, 7}, []string{"e", "f", "g"})
	truncated := arrowRows(t, []int64{100, 101, 102, 103}, []string{"x", "x", "x", "x"})
	truncated = truncated[:len(truncated)-40] // cut into the record batch

	type want struct {
		status, code string
		rows         int64
	}
	reqs := []struct {
		m    mutation
		want want
	}{
		{csvRows("t", "good-csv-1", "n,s\n1,a\n2,b\n"), want{status: subject.StatusApplied, rows: 2}},
		{csvRows("t", "new-column", "n,s,extra\n3,c,x\n"), want{code: "schema_mismatch"}},
		{csvRows("t", "good-csv-2", "n,s\n3,c\n4,d\n"), want{status: subject.StatusApplied, rows: 2}},
		{sqlMutation("bad-sql", `{"sql": "INSERT INTO t SELECT * FROM no_such_table"}`), want{code: "sql_error"}},
		{mutation{op: subject.OpAppend, id: "truncated-arrow", table: "t", contentType: subject.ContentArrow, body: truncated}, want{code: "invalid_argument"}},
		{csvRows("t", "bad id!", "n,s\n99,z\n"), want{code: "invalid_argument"}},
		{mutation{op: subject.OpAppend, id: "good-arrow", table: "t", contentType: subject.ContentArrow, body: arrow}, want{status: subject.StatusApplied, rows: 3}},
		{csvRows("t", "wrong-type", "n,s\nnot-a-number,h\n"), want{code: "schema_mismatch"}},
		{ndjsonRows(subject.OpAppend, "t", "good-ndjson", `{"n": 8, "s": "h"}`), want{status: subject.StatusApplied, rows: 1}},
		{csvRows("t", "malformed-csv", "n,s\n9,\"unterminated\n10,i\n"), want{code: "invalid_argument"}},
		{mutation{op: "bogus", id: "unknown-op", body: []byte("x"), subject: h.names.Mut("m", "bogus")}, want{code: "invalid_argument"}},
		{mutation{op: subject.OpAppend, id: "empty-body", table: "t", contentType: subject.ContentCSV}, want{code: "invalid_argument"}},
		{mutation{op: subject.OpCall, id: "no-function", contentType: subject.ContentJSON, body: []byte(`{"function": "f", "args": {}}`)}, want{code: "not_found"}},
		{mutation{op: subject.OpAppend, id: "good-json", table: "t", contentType: subject.ContentJSON, body: []byte(`[{"n": 10, "s": "j"}]`)}, want{status: subject.StatusApplied, rows: 1}},
	}
	// Published before the manager starts, so they wait together and
	// group-commit.
	seqs := make([]uint64, len(reqs))
	for i, r := range reqs {
		seqs[i] = h.publish(t, "m", r.m).Sequence
	}
	run := h.start(t, l, t.TempDir())

	var got []outcome
	require.Eventually(t, func() bool {
		got = outcomes.all()
		return len(got) >= len(reqs)
	}, waitFor, tick)
	require.Len(t, got, len(reqs), "exactly one outcome per request")
	for i, r := range reqs {
		o := got[i]
		require.False(t, o.replay)
		require.Equal(t, seqs[i], o.GetSeq(), "outcome %d in stream order", i)
		id := r.m.id
		if subject.ValidateRequest(id) == nil {
			require.Equal(t, r.m.op, o.GetOp())
		} else {
			// The request id becomes seq-<seq>; the op is not read.
			id = subject.SeqRequestID(seqs[i])
		}
		require.Equal(t, id, o.GetRequestId())
		require.Equal(t, "m", o.GetModel())
		if r.want.status == subject.StatusApplied {
			requireApplied(t, o, r.want.rows)
		} else {
			requireFailed(t, o, r.want.code)
			require.Nil(t, o.RowsAffected)
		}
	}
	t.Logf("%d requests in %d outcome events (group commits)", len(reqs), outcomes.eventCount())

	dir := run.dir
	run.stop(t)
	require.Len(t, outcomes.all(), len(reqs), "no outcome came twice")
	db := openCopy(t, localFile(dir))
	var n, sum int
	queryRow(t, db, "SELECT count(*), sum(n) FROM t", &n, &sum)
	require.Equal(t, 9, n, "the good requests' rows, and only theirs")
	require.Equal(t, 1+2+3+4+5+6+7+8+10, sum)
	require.Equal(t, []string{"n|BIGINT", "s|VARCHAR"}, queryStrings(t, db,
		"SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 't' ORDER BY ordinal_position"))
	var recorded, applied int
	var lastSeq uint64
	queryRow(t, db, "SELECT count(*), count(*) FILTER (status = 'applied') FROM _tt_requests", &recorded, &applied)
	queryRow(t, db, "SELECT applied_seq FROM _tt_state", &lastSeq)
	require.Equal(t, len(reqs), recorded, "every outcome is recorded in the model file")
	require.Equal(t, 5, applied)
	require.Equal(t, seqs[len(seqs)-1], lastSeq)
}
