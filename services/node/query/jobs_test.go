package query_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node/query"
)

// nextOutcome reads the next durable query outcome from TT_EVT.
func nextOutcome(t *testing.T, cons jetstream.Consumer) *teatreev1.QueryOutcome {
	t.Helper()
	msg, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
	require.NoError(t, err)
	out := &teatreev1.QueryOutcome{}
	require.NoError(t, proto.Unmarshal(msg.Data(), out))
	return out
}

// TestJobs runs durable query jobs from TT_CALL: every page is stored, the
// first too, and the outcome is announced for the notifier.
func TestJobs(t *testing.T) {
	t.Parallel()
	e := start(t, 2500, query.Config{Slots: 1})
	ctx := context.Background()
	cons, err := e.js.OrderedConsumer(ctx, "TT_EVT", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"tt.evt.m.result"}})
	require.NoError(t, err)

	job := func(id, body string) {
		msg := nats.NewMsg("tt.call.duckdb.m")
		msg.Header.Set("Nats-Msg-Id", id)
		msg.Data = []byte(body)
		_, err := e.js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	job("j1", `{"sql":"select i from t order by i","format":"csv","page_rows":1000}`)
	out := nextOutcome(t, cons)
	require.Nil(t, out.GetError())
	require.Equal(t, "j1", out.GetRequestId())
	require.Equal(t, int32(3), out.GetPages())
	require.Equal(t, int64(2500), out.GetRows())
	n := 0
	for page := 1; page <= 3; page++ {
		_, b, err := e.results.Get(ctx, out.GetResultId(), page)
		require.NoError(t, err)
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		require.NoError(t, err)
		n += len(recs) - 1
	}
	require.Equal(t, 2500, n)

	// A single page is stored too; a bad job ends with an error outcome.
	job("j2", `{"sql":"select 1 as one"}`)
	out = nextOutcome(t, cons)
	require.Equal(t, int32(1), out.GetPages())
	_, b, err := e.results.Get(ctx, out.GetResultId(), 1)
	require.NoError(t, err)
	require.JSONEq(t, `[{"one":1}]`, string(b))

	job("j3", `{"sql":"select * from read_csv('/etc/passwd')"}`)
	out = nextOutcome(t, cons)
	require.Equal(t, "permission_denied", out.GetError().GetCode())
	require.Contains(t, out.GetError().GetMessage(), `"<path>"`, "a durable query's error has its paths scrubbed too")
	require.NotContains(t, out.GetError().GetMessage(), "/etc/passwd")
	job("j3b", `{"sql":"pragma database_list"}`)
	out = nextOutcome(t, cons)
	require.Equal(t, "permission_denied", out.GetError().GetCode())
	job("j4", `{"sql":`)
	out = nextOutcome(t, cons)
	require.Equal(t, "invalid_argument", out.GetError().GetCode())

	// A model-prefixed message id names the request after the prefix; a
	// reserved or foreign one falls back to the seq- id.
	job("m.j5", `{"sql":"select 1 as one"}`)
	out = nextOutcome(t, cons)
	require.Equal(t, "j5", out.GetRequestId())
	job("other.j6", `{"sql":"select 1 as one"}`)
	out = nextOutcome(t, cons)
	require.True(t, strings.HasPrefix(out.GetRequestId(), "seq-"), out.GetRequestId())

	// Every job was acknowledged: nothing is left in the work queue.
	require.Eventually(t, func() bool {
		s, err := e.js.Stream(ctx, "TT_CALL")
		require.NoError(t, err)
		info, err := s.Info(ctx)
		require.NoError(t, err)
		return info.State.Msgs == 0
	}, 10*time.Second, 50*time.Millisecond)
}
