package notifier_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// TestResultPages: a durable query's result becomes one notification per
// page on the request's subject, in order, each with its page headers.
func TestResultPages(t *testing.T) {
	t.Parallel()
	h := start(t)
	ctx := context.Background()
	const pages = 40 // more than are published before acks are awaited
	for p := 1; p <= pages; p++ {
		require.NoError(t, h.results.PutPage(ctx, "res1", p, fmt.Appendf(nil, "page %d\n", p)))
	}
	require.NoError(t, h.results.PutMeta(ctx, "res1", results.Meta{Model: "m", Version: 3, ContentType: subject.ContentCSV, Pages: pages, Rows: 400}))
	out, err := proto.Marshal(&teatreev1.QueryOutcome{Model: "m", RequestId: "q1", ResultId: "res1", Pages: pages, Rows: 400, Version: 3, ContentType: subject.ContentCSV})
	require.NoError(t, err)
	seq := h.publishEvent(h.names.Evt("m", subject.EventResult), out, "res-m-q1")
	h.processed(seq)

	cons, err := h.js.OrderedConsumer(ctx, h.names.NtfStream(), jetstream.OrderedConsumerConfig{FilterSubjects: []string{"tt.ntf.m.req.q1"}})
	require.NoError(t, err)
	for p := 1; p <= pages; p++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err)
		require.Equal(t, fmt.Sprintf("page %d\n", p), string(msg.Data()))
		hd := msg.Headers()
		require.Equal(t, fmt.Sprint(p), hd.Get("Tt-Page"))
		require.Equal(t, fmt.Sprint(pages), hd.Get("Tt-Pages"))
		require.Equal(t, "result", hd.Get("Tt-Status"))
		require.Equal(t, "q1", hd.Get("Tt-Request-Id"))
		require.Equal(t, "m", hd.Get("Tt-Model"))
		require.Equal(t, "400", hd.Get("Tt-Rows"))
		require.Equal(t, "3", hd.Get("Tt-Version"))
		require.Equal(t, "text/csv", hd.Get("Content-Type"))
	}
	require.Equal(t, uint64(pages), h.count("tt.ntf.m.req.q1"))

	// The same event again (a retried job) adds nothing.
	h.processed(h.publishEvent(h.names.Evt("m", subject.EventResult), out, "res-m-q1-retry"))
	require.Equal(t, uint64(pages), h.count("tt.ntf.m.req.q1"))
}

// TestResultFailed: a failed durable query ends with one failed status.
func TestResultFailed(t *testing.T) {
	t.Parallel()
	h := start(t)
	out, err := proto.Marshal(&teatreev1.QueryOutcome{Model: "m", RequestId: "q2", Error: &teatreev1.Error{Code: "sql_error", Message: "Parser Error: nope"}})
	require.NoError(t, err)
	h.processed(h.publishEvent(h.names.Evt("m", subject.EventResult), out, "res-m-q2"))
	raw := h.notification("tt.ntf.m.req.q2")
	require.Equal(t, "failed", raw.Header.Get("Tt-Status"))
	require.Equal(t, "1", raw.Header.Get("Tt-Pages"))
	require.Empty(t, raw.Header.Get("Tt-Seq"))
	require.JSONEq(t, `{"request_id":"q2","model":"m","op":"query","status":"failed","applied_at":"`+statusTime(t, raw.Data)+`",
		"error":{"code":"sql_error","message":"Parser Error: nope"}}`, string(raw.Data))
}

// statusTime returns the applied_at of a status body, checking its form.
func statusTime(t *testing.T, body []byte) string {
	t.Helper()
	var s struct {
		AppliedAt string `json:"applied_at"`
	}
	require.NoError(t, json.Unmarshal(body, &s))
	_, err := time.Parse(time.RFC3339Nano, s.AppliedAt)
	require.NoError(t, err)
	return s.AppliedAt
}
