package stack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/authtest"
	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/worker"
)

// TestEveryOutcomeNamesItsPrincipal: under a policy, whoever sends a
// request is named by its terminal notification (Tt-Principal and the
// status's principal), by GET .../requests/{id}, and by a compute call's
// record: the gateway's bearer token's principal for HTTP, the subject's
// last token, which the NATS permissions fix to the user's own name, for
// NATS.
func TestEveryOutcomeNamesItsPrincipal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, connect := runSecured(t, authtest.WritePolicy(t))
	names := subject.Default()
	rootDo(t, st, http.MethodPost, "/v1/models", `{"id":"sales"}`)
	rootDo(t, st, http.MethodPut, "/v1/models/sales/functions/describe", `{"kind":"compute","handler":"describe","capabilities":["go"]}`)

	// Over HTTP: the token's principal.
	res := rootRequest(t, st, http.MethodPost, "/v1/models/sales/sql?wait=applied", `{"sql":"create table t (x int)"}`, "by-root")
	require.Equal(t, http.StatusOK, res.code, "%s", res.body)
	require.Equal(t, authtest.Root, res.header.Get(subject.HeaderPrincipal))
	requirePrincipal(t, st, "by-root", authtest.Root, subject.StatusApplied)

	// Over NATS: the subject's last token.
	nc := connect(t, authtest.Writer, nats.CustomInboxPrefix(auth.InboxPrefix(authtest.Writer)))
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	publish := func(subj, msgID, body string) {
		t.Helper()
		m := nats.NewMsg(subj)
		m.Data = []byte(body)
		m.Header.Set(subject.HeaderMsgID, "sales."+msgID)
		_, err := js.PublishMsg(ctx, m)
		require.NoError(t, err)
	}
	publish(names.MutBy("sales", subject.OpSQL, authtest.Writer), "by-writer", `{"sql":"insert into t values (1)"}`)
	requirePrincipal(t, st, "by-writer", authtest.Writer, subject.StatusApplied)

	// A compute call the dispatcher refuses (no such function) ends
	// failed in its sender's name.
	publish(names.CallBy("sales", authtest.Writer), "call-nope", `{"function":"nope"}`)
	requirePrincipal(t, st, "call-nope", authtest.Writer, subject.StatusFailed)
	// The record is written after the notification.
	var rec *calls.Record
	require.Eventually(t, func() bool {
		rec = callRecord(t, st, "call-nope")
		return rec != nil && rec.Terminal()
	}, time.Minute, 20*time.Millisecond, "the refused call has no record:\n%s", st.logs)
	require.Equal(t, authtest.Writer, rec.Principal)

	// One it queues carries its principal in the job and the record: a
	// worker's heartbeat, put as the worker principal, is all it waits for.
	wc, err := worker.Connect(st.NATSURL, natsboot.Credentials{User: authtest.Worker, Password: authtest.Password(authtest.Worker)}, authtest.Worker)
	require.NoError(t, err)
	t.Cleanup(wc.Close)
	wjs, err := jetstream.New(wc)
	require.NoError(t, err)
	compute, err := wjs.KeyValue(ctx, names.ComputeBucket())
	require.NoError(t, err)
	hb, err := json.Marshal(calls.Heartbeat{ID: "w-1", Capabilities: []string{"go"}, Handlers: []string{"describe"}, Slots: 1, Running: []string{}})
	require.NoError(t, err)
	_, err = compute.Put(ctx, "w-1", hb)
	require.NoError(t, err)
	publish(names.CallBy("sales", authtest.Writer), "call-queued", `{"function":"describe"}`)
	require.Eventually(t, func() bool {
		rec = callRecord(t, st, "call-queued")
		return rec != nil && rec.JobSeq != 0
	}, time.Minute, 20*time.Millisecond, "the call is not queued:\n%s", st.logs)
	require.Equal(t, authtest.Writer, rec.Principal)
}

type answer struct {
	code   int
	header http.Header
	body   []byte
}

// rootRequest sends a request to the gateway as authtest.Root, with
// Idempotency-Key id if it is not empty.
func rootRequest(t *testing.T, st *running, method, path, body, id string) answer {
	t.Helper()
	req, err := http.NewRequest(method, st.HTTPURL+path, bytes.NewBufferString(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+authtest.RootToken)
	req.Header.Set("Content-Type", "application/json")
	if id != "" {
		req.Header.Set("Idempotency-Key", id)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return answer{code: res.StatusCode, header: res.Header, body: b}
}

// requirePrincipal waits for request id of model sales to end with status
// and checks that GET .../requests/{id} names principal, in its header and
// its body.
func requirePrincipal(t *testing.T, st *running, id, principal, status string) {
	t.Helper()
	var res answer
	require.Eventually(t, func() bool {
		res = rootRequest(t, st, http.MethodGet, "/v1/models/sales/requests/"+id, "", "")
		return res.code == http.StatusOK
	}, time.Minute, 20*time.Millisecond, "request %s has no outcome:\n%s", id, st.logs)
	require.Equal(t, status, res.header.Get(subject.HeaderStatus), "%s", res.body)
	require.Equal(t, principal, res.header.Get(subject.HeaderPrincipal))
	var body struct {
		Principal string `json:"principal"`
	}
	require.NoError(t, json.Unmarshal(res.body, &body))
	require.Equal(t, principal, body.Principal, "%s", res.body)
}

// callRecord is the record of call id of model sales, nil while there is
// none.
func callRecord(t *testing.T, st *running, id string) *calls.Record {
	t.Helper()
	res := rootRequest(t, st, http.MethodGet, "/v1/models/sales/calls/"+id, "", "")
	if res.code == http.StatusNotFound {
		return nil
	}
	require.Equal(t, http.StatusOK, res.code, "%s", res.body)
	rec := &calls.Record{}
	require.NoError(t, json.Unmarshal(res.body, rec))
	return rec
}
