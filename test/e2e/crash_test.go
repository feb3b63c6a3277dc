package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// TestCrashKill9 kills `teatree up` with SIGKILL at random moments while a
// client publishes uniquely numbered rows, restarts it, and checks that
// every acknowledged request was applied exactly once and has exactly one
// terminal notification, and that the newest snapshot agrees.
func TestCrashKill9(t *testing.T) {
	t.Parallel()
	crashTest(t, 1, 3000)
}

// TestCrashKill9ManyModels is the same over 50 models written at once.
func TestCrashKill9ManyModels(t *testing.T) {
	t.Parallel()
	crashTest(t, 50, 3000)
}

func crashTest(t *testing.T, models, total int) {
	const publishers = 4
	s := startServer(t)
	model := func(n int) string { return fmt.Sprintf("crash-%d", n%models) }
	for m := range models {
		createModel(t, s, fmt.Sprintf(`{"id":%q,"snapshot":{"interval_ms":200}}`, model(m)))
	}
	_, js := s.connect(t)

	var next, ackCount atomic.Int64
	var acked sync.Map // request id -> stream sequence
	var wg sync.WaitGroup
	deadline := time.Now().Add(5 * time.Minute)
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				n := int(next.Add(1) - 1)
				if n >= total {
					return
				}
				id := fmt.Sprintf("r-%d", n)
				msg := nats.NewMsg("tt.mut." + model(n) + ".append")
				msg.Header.Set("Nats-Msg-Id", model(n)+"."+id)
				msg.Header.Set("Tt-Table", "numbers")
				msg.Header.Set("Content-Type", "application/x-ndjson")
				msg.Data = fmt.Appendf(nil, "{\"n\":%d}\n", n)
				// A client retries with the same id until JetStream acks:
				// the duplicate window and the model's request table make
				// the retry safe.
				for time.Now().Before(deadline) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					ack, err := js.PublishMsg(ctx, msg)
					cancel()
					if err == nil {
						acked.Store(id, ack.Sequence)
						ackCount.Add(1)
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}

	// Kill after a random number of fresh acknowledgements, so that every
	// kill lands while requests are flowing.
	for kill := range 3 {
		target := ackCount.Load() + 100 + rand.Int64N(400)
		require.Eventually(t, func() bool { return ackCount.Load() >= target }, time.Minute, time.Millisecond)
		t.Logf("kill -9 #%d with %d of %d requests acknowledged", kill+1, ackCount.Load(), total)
		s.kill()
		s.start()
	}
	wg.Wait()
	count := 0
	acked.Range(func(_, _ any) bool { count++; return true })
	require.Equal(t, total, count, "every request must be acknowledged in the end")

	// Every request ends with exactly one terminal notification.
	seen := map[string]int{}
	require.Eventually(t, func() bool {
		seen = map[string]int{}
		for m := range models {
			for id, n := range readNotifications(t, js, model(m)) {
				seen[id] += n
			}
		}
		return len(seen) == total
	}, 2*time.Minute, 250*time.Millisecond, "notifications for %d of %d requests", len(seen), total)
	for id, n := range seen {
		require.Equal(t, 1, n, "request %s has %d terminal notifications", id, n)
	}
	maxSeq := map[string]uint64{}
	for i := range total {
		id := fmt.Sprintf("r-%d", i)
		st, _ := waitNotification(t, js, model(i), id)
		require.Equal(t, "applied", st.Status, "%s: %+v", id, st)
		seq, _ := acked.Load(id)
		require.Equal(t, seq.(uint64), st.Seq, id)
		maxSeq[model(i)] = max(maxSeq[model(i)], st.Seq)
	}

	// The newest snapshots hold every number exactly once.
	var rows, distinct, sum int64
	for m := range models {
		r, d, sm := newestNumbers(t, s, model(m), maxSeq[model(m)])
		rows, distinct, sum = rows+r, distinct+d, sum+sm
	}
	require.Equal(t, int64(total), rows)
	require.Equal(t, int64(total), distinct)
	require.Equal(t, int64(total*(total-1)/2), sum)
}

// newestNumbers downloads the newest version of model once it includes
// seq, and returns the count, distinct count and sum of its numbers.
func newestNumbers(t *testing.T, s *server, model string, seq uint64) (rows, distinct, sum int64) {
	t.Helper()
	var version uint64
	require.Eventually(t, func() bool {
		code, body, _ := do(t, http.MethodGet, s.url("/v1/models/"+model+"/snapshots"), "", nil)
		if code != http.StatusOK {
			return false
		}
		var list struct {
			Snapshots []struct {
				Version    uint64 `json:"version"`
				AppliedSeq uint64 `json:"applied_seq"`
			} `json:"snapshots"`
		}
		require.NoError(t, json.Unmarshal(body, &list))
		if len(list.Snapshots) == 0 || list.Snapshots[0].AppliedSeq < seq {
			return false
		}
		version = list.Snapshots[0].Version
		return true
	}, time.Minute, 100*time.Millisecond, "no version of %s includes seq %d", model, seq)
	code, file, _ := do(t, http.MethodGet, s.url(fmt.Sprintf("/v1/models/%s/snapshots/%d/model.duckdb", model, version)), "", nil)
	require.Equal(t, http.StatusOK, code)
	path := filepath.Join(t.TempDir(), model+".duckdb")
	require.NoError(t, os.WriteFile(path, file, 0o644))
	require.NoError(t, openReadOnly(t, path).QueryRow("SELECT count(*), count(DISTINCT n), coalesce(sum(n), 0) FROM numbers").Scan(&rows, &distinct, &sum))
	return rows, distinct, sum
}

// readNotifications counts the request notifications of a model in TT_NTF,
// by request id.
func readNotifications(t *testing.T, js jetstream.JetStream, model string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, n := range readStatuses(t, js, model) {
		seen[n.header]++
	}
	return seen
}
