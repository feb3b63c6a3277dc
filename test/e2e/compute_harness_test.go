package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// callRecord is the part of a compute call's record (GET
// /v1/models/{m}/calls/{id}) the tests look at.
type callRecord struct {
	CallID      string `json:"call_id"`
	State       string `json:"state"`
	Worker      string `json:"worker"`
	Attempt     int    `json:"attempt"`
	MaxAttempts int    `json:"max_attempts"`
	Attempts    []struct {
		Attempt int    `json:"attempt"`
		Worker  string `json:"worker"`
		Error   *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	} `json:"attempts"`
	Result *struct {
		Pages       int    `json:"pages"`
		Rows        int64  `json:"rows"`
		ContentType string `json:"content_type"`
	} `json:"result"`
	WriteBack *struct {
		RequestID string `json:"request_id"`
	} `json:"write_back"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// putFunction registers a function over HTTP.
func putFunction(t *testing.T, s urler, model, name, def string) {
	t.Helper()
	code, body, _ := do(t, http.MethodPut, s.url("/v1/models/"+model+"/functions/"+name), "application/json", []byte(def))
	require.Equal(t, http.StatusOK, code, string(body))
}

// call calls a function over HTTP with the request id id and returns the
// gateway's answer.
func call(t *testing.T, s urler, model, name, id, args, query string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url("/v1/models/"+model+"/calls/"+name+query), strings.NewReader(args))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", id)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b json.RawMessage
	_ = json.NewDecoder(resp.Body).Decode(&b)
	return resp.StatusCode, b
}

// callAccepted calls a compute function and requires it to be accepted.
func callAccepted(t *testing.T, s urler, model, name, id, args string) {
	t.Helper()
	code, body := call(t, s, model, name, id, args, "")
	require.Equal(t, http.StatusAccepted, code, string(body))
}

// record reads a call's record; ok is false while there is none.
func record(t *testing.T, s urler, model, id string) (callRecord, bool) {
	t.Helper()
	code, body, _ := do(t, http.MethodGet, s.url("/v1/models/"+model+"/calls/"+id), "", nil)
	if code == http.StatusNotFound {
		return callRecord{}, false
	}
	require.Equal(t, http.StatusOK, code, string(body))
	var r callRecord
	require.NoError(t, json.Unmarshal(body, &r), string(body))
	return r, true
}

// waitRecord waits until the call's record satisfies ok.
func waitRecord(t *testing.T, s urler, model, id string, within time.Duration, what string, ok func(callRecord) bool) callRecord {
	t.Helper()
	var last callRecord
	require.Eventually(t, func() bool {
		r, found := record(t, s, model, id)
		last = r
		return found && ok(r)
	}, within, 50*time.Millisecond, "call %s/%s: %s; last record %+v", model, id, what, last)
	return last
}

func ended(r callRecord) bool { return r.State == "done" || r.State == "failed" }

// callMessages returns every notification of a call, in order: progress,
// then its pages or its failed status.
func callMessages(t *testing.T, js jetstream.JetStream, model, id string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "TT_NTF")
	require.NoError(t, err)
	subj := "tt.ntf." + model + ".req." + id
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		msg, err := stream.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subj))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		require.NoError(t, err)
		out = append(out, msg)
		seq = msg.Sequence + 1
	}
}

// terminals counts a call's terminal notifications: failed statuses and
// last pages of its result.
func terminals(msgs []*jetstream.RawStreamMsg) int {
	n := 0
	for _, m := range msgs {
		switch m.Header.Get("Tt-Status") {
		case "failed", "applied":
			n++
		case "result":
			if m.Header.Get("Tt-Page") == m.Header.Get("Tt-Pages") {
				n++
			}
		}
	}
	return n
}

// startGoWorker runs `teatree serve worker` with the built-in Go functions.
func startGoWorker(t *testing.T, natsURL, id string, slots int, extra ...string) *proc {
	t.Helper()
	args := append([]string{"serve", "worker", "--nats", natsURL, "--id", id, "--slots", strconv.Itoa(slots), "--capabilities", "go"}, extra...)
	p := newProc(t, "worker "+id, binary, args, readyTeatree("teatree serving", ""))
	p.start()
	return p
}

var nodeWorkerOnce sync.Once

// nodeWorkerScript is examples/node-worker/worker.mjs, with its packages
// installed (make test-e2e installs them).
func nodeWorkerScript(t *testing.T) string {
	t.Helper()
	script, err := filepath.Abs("../../examples/node-worker/worker.mjs")
	require.NoError(t, err)
	_, err = os.Stat(filepath.Join(filepath.Dir(script), "node_modules"))
	require.NoError(t, err, "run `make test-e2e` (or npm ci in examples/node-worker) first")
	return script
}

// startNodeWorker runs the Node.js example worker; it is ready once the
// gateway lists it among the live workers.
func startNodeWorker(t *testing.T, s urler, natsURL, id string, slots int) *proc {
	t.Helper()
	node, err := exec.LookPath("node")
	require.NoError(t, err)
	p := newProc(t, "node worker "+id, node, []string{nodeWorkerScript(t), "--nats", natsURL, "--id", id, "--slots", strconv.Itoa(slots)}, func(*proc) bool {
		return workerLive(t, s, id)
	})
	p.start()
	return p
}

// workerLive says whether GET /v1/workers lists id.
func workerLive(t *testing.T, s urler, id string) bool {
	code, body, _ := do(t, http.MethodGet, s.url("/v1/workers"), "", nil)
	if code != http.StatusOK {
		return false
	}
	var list struct {
		Workers []struct {
			ID string `json:"id"`
		} `json:"workers"`
	}
	if json.Unmarshal(body, &list) != nil {
		return false
	}
	for _, w := range list.Workers {
		if w.ID == id {
			return true
		}
	}
	return false
}
