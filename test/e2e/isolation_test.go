package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestRequestIDsBelongToTheirModel is the first finding of the isolation
// issue, as a new user met it: the same Idempotency-Key on two models was
// one request, and the second model's rows were never applied.
func TestRequestIDsBelongToTheirModel(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	createModel(t, s, `{"id":"a"}`)
	createModel(t, s, `{"id":"b"}`)
	post := func(model string) status {
		req, err := http.NewRequest(http.MethodPost, s.url("/v1/models/"+model+"/tables/t/rows?wait=applied"), strings.NewReader("n\n1\n"))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Idempotency-Key", "same-1")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var st status
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&st))
		return st
	}
	seqs := map[string]uint64{}
	for _, model := range []string{"a", "b"} {
		st := post(model)
		seqs[model] = st.Seq
		require.Equal(t, "applied", st.Status, "%s: %+v", model, st)
		require.Equal(t, "same-1", st.RequestID)
		require.Equal(t, model, st.Model)
		got, _ := waitNotification(t, js, model, "same-1")
		require.Equal(t, st.Seq, got.Seq, "one notification per model, with the model's own request")
	}
	// A retry on one model is still the same request.
	again := post("a")
	require.Equal(t, "applied", again.Status)
	require.Equal(t, int64(1), countRows(t, s, "a", "select count(*) as n from t", again.Seq))
	require.Equal(t, int64(1), countRows(t, s, "b", "select count(*) as n from t", seqs["b"]))

	// Over NATS: <model>.<id> is the message id; seq- ids are reserved.
	publish(t, js, "tt.mut.b.append", "b.n-2", map[string]string{"Tt-Table": "t", "Content-Type": "text/csv"}, []byte("n\n2\n"))
	st, _ := waitNotification(t, js, "b", "n-2")
	require.Equal(t, "applied", st.Status, "%+v", st)
	seq := publish(t, js, "tt.mut.b.append", "b.seq-9", map[string]string{"Tt-Table": "t", "Content-Type": "text/csv"}, []byte("n\n3\n"))
	st, _ = waitNotification(t, js, "b", "seq-"+itoa(seq))
	requireError(t, st, "invalid_argument")
	require.Equal(t, int64(3), countRows(t, s, "b", "select sum(n)::bigint as n from t", seq), "the refused request changed nothing")
}

// TestRunawayStatementEndsAtItsDeadline is the second finding: one runaway
// statement wedged its model for ever, and SIGTERM did not stop teatree.
func TestRunawayStatementEndsAtItsDeadline(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	// Far above what the append after the runaway needs on a loaded machine.
	createModel(t, s, `{"id":"slow","limits":{"request_timeout_ms":5000}}`)
	_, body, _ := do(t, http.MethodGet, s.url("/v1/models/slow"), "", nil)
	require.Contains(t, string(body), `"request_timeout_ms":5000`, "GET shows the limit")

	sqlHdr := map[string]string{"Content-Type": "application/json"}
	publish(t, js, "tt.mut.slow.sql", "slow.bare", sqlHdr, []byte(`{"sql":"select count(*) from range(1000000000000000)"}`))
	publish(t, js, "tt.mut.slow.sql", "slow.runaway", sqlHdr, []byte(`{"sql":"create table big as select count(*) as c from range(1000000000000000)"}`))
	publish(t, js, "tt.mut.slow.append", "slow.after", map[string]string{"Tt-Table": "t", "Content-Type": "text/csv"}, []byte("n\n7\n"))
	st, _ := waitNotification(t, js, "slow", "bare")
	requireError(t, st, "invalid_argument") // a bare SELECT changes nothing
	st, _ = waitNotification(t, js, "slow", "runaway")
	requireError(t, st, "deadline_exceeded")
	st, _ = waitNotification(t, js, "slow", "after")
	require.Equal(t, "applied", st.Status, "the model goes on after a request past its deadline: %+v", st)
	require.Equal(t, int64(7), countRows(t, s, "slow", "select sum(n)::bigint as n from t", st.Seq))

}

// TestSIGTERMWhileAStatementRuns: teatree stops within 10 s of SIGTERM even
// while a statement that would run for hours holds a model's writer.
func TestSIGTERMWhileAStatementRuns(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--log-level", "debug")
	_, js := s.connect(t)
	createModel(t, s, `{"id":"stuck","limits":{"request_timeout_ms":3600000}}`)
	publish(t, js, "tt.mut.stuck.sql", "stuck.long", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"sql":"create table big as select count(*) as c from range(1000000000000000)"}`))
	// The batch is being applied once the db-manager says so.
	require.Eventually(t, func() bool {
		for _, line := range strings.Split(s.logs.String(), "\n") {
			if strings.Contains(line, `msg="applying batch"`) && strings.Contains(line, "model=stuck") {
				return true
			}
		}
		return false
	}, time.Minute, 20*time.Millisecond, "the statement never started")
	start := time.Now()
	require.NoError(t, s.terminate(10*time.Second), "while a statement ran")
	t.Logf("stopped %v after SIGTERM", time.Since(start))
}

// countRows runs a query of one integer column n over HTTP, answered
// from a version that includes the request at minSeq.
func countRows(t *testing.T, s *server, model, sql string, minSeq uint64) int64 {
	t.Helper()
	body, err := json.Marshal(map[string]any{"sql": sql, "format": "json", "min_seq": minSeq})
	require.NoError(t, err)
	status, b, _ := do(t, http.MethodPost, s.url("/v1/models/"+model+"/query"), "application/json", body)
	require.Equal(t, http.StatusOK, status, string(b))
	var rows []struct {
		N int64 `json:"n"`
	}
	require.NoError(t, json.Unmarshal(b, &rows), string(b))
	require.Len(t, rows, 1)
	return rows[0].N
}
