package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// An idle model closes its file and gives up its lease; the next mutation
// places it again and finds everything applied before.
func TestIdleModelUnloadsAndComesBack(t *testing.T) {
	t.Parallel()
	s := startServer(t, "--idle-timeout", "500ms")
	_, js := s.connect(t)
	ctx := context.Background()
	owners, err := js.KeyValue(ctx, "tt_owners")
	require.NoError(t, err)
	createModel(t, s, `{"id":"sleepy"}`)

	leaseGone := func() {
		t.Helper()
		require.Eventually(t, func() bool {
			_, err := owners.Get(ctx, "sleepy")
			return errors.Is(err, jetstream.ErrKeyNotFound)
		}, 30*time.Second, 20*time.Millisecond, "the idle model kept its lease")
	}
	sql := func(id, stmt string) status {
		t.Helper()
		body, _ := json.Marshal(map[string]string{"sql": stmt})
		publish(t, js, "tt.mut.sleepy.sql", id, map[string]string{"Content-Type": "application/json"}, body)
		st, _ := waitNotification(t, js, "sleepy", id)
		return st
	}

	require.Equal(t, "applied", sql("c", "create table t (x int)").Status)
	for round := range 3 {
		leaseGone()
		id := "i" + strconv.Itoa(round)
		st := sql(id, "insert into t values ("+strconv.Itoa(round)+")")
		require.Equal(t, "applied", st.Status, st.String())
		// A failing request last: the model must still publish its
		// applied sequence before going idle, or it would be woken again.
		requireError(t, sql("bad"+strconv.Itoa(round), "insert into missing values (1)"), "sql_error")
	}
	leaseGone()
	type info struct {
		Spec struct {
			AppliedSeq uint64 `json:"applied_seq"`
			Version    uint64 `json:"version"`
		} `json:"spec"`
		Owner string `json:"owner"`
		Lag   uint64 `json:"lag"`
	}
	show := func() info {
		t.Helper()
		status, body, _ := do(t, http.MethodGet, s.url("/v1/models/sleepy"), "", nil)
		require.Equal(t, http.StatusOK, status, string(body))
		var i info
		require.NoError(t, json.Unmarshal(body, &i), string(body))
		return i
	}
	idle := show()
	mut, err := js.Stream(ctx, "TT_MUT")
	require.NoError(t, err)
	last, err := mut.GetLastMsgForSubject(ctx, "tt.mut.sleepy.>")
	require.NoError(t, err)
	require.Equal(t, last.Sequence, idle.Spec.AppliedSeq, "the last version covers every request, failed ones too")
	require.Zero(t, idle.Lag)
	require.Empty(t, idle.Owner)

	// Idle stays idle: nothing waiting, so the dispatcher leaves it alone.
	require.Never(t, func() bool {
		_, err := owners.Get(ctx, "sleepy")
		return err == nil
	}, 2*time.Second, 50*time.Millisecond, "an idle model with nothing waiting was placed again")
	require.Equal(t, idle.Spec.Version, show().Spec.Version, "no new version while idle")

	status, body, _ := do(t, http.MethodPost, s.url("/v1/models/sleepy/query"), "application/json",
		[]byte(`{"sql":"select count(*) as n, sum(x)::int as s from t","format":"json"}`))
	require.Equal(t, http.StatusOK, status, string(body))
	require.JSONEq(t, `[{"n":3,"s":3}]`, string(body))
}
