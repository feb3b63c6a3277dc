package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	id   uint64
	kind string
	data string
}

// openEvents connects to the event stream and parses events into a channel.
func openEvents(t *testing.T, env *testEnv, query, lastID string) (<-chan sseEvent, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, env.url+"/v1/models/sales/events"+query, nil)
	require.NoError(t, err)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))
	events := make(chan sseEvent, 1000)
	go func() {
		defer resp.Body.Close()
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		var data []string
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if ev.kind != "" {
					ev.data = strings.Join(data, "\n")
					events <- ev
				}
				ev, data = sseEvent{}, nil
			case strings.HasPrefix(line, "id: "):
				ev.id, _ = strconv.ParseUint(line[4:], 10, 64)
			case strings.HasPrefix(line, "event: "):
				ev.kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				data = append(data, line[6:])
			}
		}
	}()
	return events, cancel
}

// notifyNth publishes the i-th status notification as the notifier would.
func notifyNth(t *testing.T, env *testEnv, i int) {
	t.Helper()
	msg := nats.NewMsg(env.names.NtfRequest("sales", fmt.Sprintf("r%d", i)))
	msg.Header.Set(subject.HeaderStatus, subject.StatusApplied)
	msg.Header.Set(subject.HeaderRequestID, fmt.Sprintf("r%d", i))
	msg.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	msg.Data = fmt.Appendf(nil, `{"request_id":"r%d","status":"applied","seq":%d}`, i, i)
	_, err := env.nats.JS.PublishMsg(context.Background(), msg)
	require.NoError(t, err)
}

func next(t *testing.T, events <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-events:
		require.True(t, ok, "event stream ended")
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return sseEvent{}
}

// TestEventsReplayThenLive: a late joiner gets the whole history, then live
// events, none twice and none missing; Last-Event-ID resumes exactly.
func TestEventsReplayThenLive(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")
	for i := 1; i <= 500; i++ {
		notifyNth(t, env, i)
	}
	events, stop := openEvents(t, env, "", "")
	var last uint64
	for i := 1; i <= 500; i++ {
		ev := next(t, events)
		require.Equal(t, "status", ev.kind)
		require.Greater(t, ev.id, last)
		last = ev.id
		require.JSONEq(t, fmt.Sprintf(`{"request_id":"r%d","status":"applied","seq":%d}`, i, i), ev.data)
	}
	for i := 501; i <= 520; i++ {
		notifyNth(t, env, i)
		ev := next(t, events)
		require.Contains(t, ev.data, fmt.Sprintf(`"r%d"`, i))
		require.Greater(t, ev.id, last)
		last = ev.id
	}
	stop()

	// Resume in the middle: everything after event 250's id, once each.
	resumed, stop := openEvents(t, env, "", strconv.FormatUint(last-270, 10))
	defer stop()
	for i := 251; i <= 520; i++ {
		ev := next(t, resumed)
		require.Contains(t, ev.data, fmt.Sprintf(`"r%d"`, i))
	}
	notifyNth(t, env, 521)
	require.Contains(t, next(t, resumed).data, `"r521"`)

	// from_seq starts at a sequence, inclusive.
	fromSeq, stop2 := openEvents(t, env, "?from_seq="+strconv.FormatUint(last, 10), "")
	defer stop2()
	require.Contains(t, next(t, fromSeq).data, `"r520"`)
}

func TestEventsBadInput(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/nope/events", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/events?since=yesterday", nil), http.StatusBadRequest, "invalid_argument")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/events?from_seq=x", nil), http.StatusBadRequest, "invalid_argument")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/events", nil, "Last-Event-ID", "abc"), http.StatusBadRequest, "invalid_argument")
}
