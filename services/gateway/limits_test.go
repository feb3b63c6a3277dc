package gateway

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestMutationRateLimitReachedAndRecovered(t *testing.T) {
	t.Parallel()
	env, _, _ := startSecured(t, rootPolicy+`
  - name: loader
    `+tokenLine("loader")+`
    allow: [{models: ["sales"], roles: [write]}]
    limits: {mutations_per_second: 1}
`)
	require.Equal(t, http.StatusCreated, env.as(t, "root", http.MethodPost, "/v1/models", []byte(`{"id":"sales"}`)).status)
	appendRow := func() response {
		return env.as(t, "loader", http.MethodPost, "/v1/models/sales/tables/t/rows", []byte(`[{"a":1}]`))
	}

	// A burst of one: of a few quick mutations, all but about one a second
	// are refused.
	var refused response
	for range 5 {
		if r := appendRow(); r.status != http.StatusAccepted {
			refused = r
			break
		}
	}
	requireError(t, refused, http.StatusTooManyRequests, "resource_exhausted")
	require.Contains(t, string(refused.body), "principal loader is over its limit of 1 mutations and calls per second")
	secs, err := strconv.Atoi(refused.header.Get("Retry-After"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, secs, 1)

	require.Eventually(t, func() bool {
		r := appendRow()
		if r.status == http.StatusTooManyRequests {
			return false
		}
		require.Equal(t, http.StatusAccepted, r.status, "body %s", r.body)
		return true
	}, 30*time.Second, 100*time.Millisecond)
}

func TestConcurrentQueryLimitReachedAndRecovered(t *testing.T) {
	t.Parallel()
	env, _, _ := startSecured(t, rootPolicy+`
  - name: analyst
    `+tokenLine("analyst")+`
    allow: [{models: ["sales"], roles: [read]}]
    limits: {queries: 1}
`)
	// The executor stands in: it holds the first query until released and
	// answers the others at once.
	held := make(chan *nats.Msg, 1)
	release := make(chan struct{})
	first := true
	sub, err := env.nats.Conn.Subscribe(env.names.Query("sales"), func(m *nats.Msg) {
		if first {
			first = false
			held <- m
			<-release
		}
		_ = m.Respond([]byte(`[{"x":1}]`))
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	var once bool
	releaseFirst := func() {
		if !once {
			once = true
			close(release)
		}
	}
	t.Cleanup(releaseFirst)

	query := func() response {
		return env.as(t, "analyst", http.MethodPost, "/v1/models/sales/query", []byte(`{"sql":"select 1 as x"}`))
	}
	done := make(chan int, 1)
	go func() {
		// Not query(): require may not stop the test from this goroutine.
		req, _ := http.NewRequest(http.MethodPost, env.url+"/v1/models/sales/query", strings.NewReader(`{"sql":"select 1 as x"}`))
		req.Header.Set("Authorization", "Bearer analyst")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	select {
	case <-held:
	case <-time.After(30 * time.Second):
		t.Fatal("the first query never reached the executor")
	}

	r := query()
	requireError(t, r, http.StatusTooManyRequests, "resource_exhausted")
	require.Contains(t, string(r.body), "limit of queries at once")
	require.Equal(t, "1", r.header.Get("Retry-After"))

	releaseFirst()
	require.Equal(t, http.StatusOK, <-done)
	r = query()
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
}
