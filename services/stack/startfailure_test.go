package stack_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/node/dbmanager"
	"github.com/teatree-dev/teatree/services/stack"
)

// TestModelThatCannotStartFailsLoudly damages a model's file before its
// node opens it: the node gives the model up after its start bound, the
// model's requests end unavailable (one notification each, naming the
// failure), GET /v1/models/{m} says it is failing and why; once the file
// is removed, a new request starts the model again and applies.
func TestModelThatCannotStartFailsLoudly(t *testing.T) {
	ctx := context.Background()
	data := t.TempDir()
	st := runStack(t, stack.Config{
		Services: stack.AllServices,
		HTTPAddr: "127.0.0.1:0",
		Boot:     natsboot.Config{LeaseTTL: 2 * time.Second},
		Data:     data,
		Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 2, StartBound: 500 * time.Millisecond},
		Manager:  dbmanager.Config{IdleTimeout: time.Hour},
	})
	js, logs, r := st.js, st.logs, st.Ready
	kv, mut, ntf := st.models, st.mut, st.ntf
	names := subject.Default()

	const model = "broken"
	spec, err := catalog.CreateModel(ctx, kv, mut, &teatreev1.ModelSpec{Id: model})
	require.NoError(t, err)
	// Where the node keeps the model's read-write file (stack: Data/models,
	// node: one directory per incarnation).
	file := filepath.Join(data, "models", model, strconv.FormatUint(spec.GetCreatedSeq(), 10), "model.duckdb")
	require.NoError(t, os.MkdirAll(filepath.Dir(file), 0o755))
	garbage := make([]byte, 64<<10)
	_, _ = rand.Read(garbage)
	require.NoError(t, os.WriteFile(file, garbage, 0o644))

	publish := func(id, sql string) {
		msg := nats.NewMsg(names.Mut(model, subject.OpSQL))
		msg.Data = []byte(`{"sql":"` + sql + `"}`)
		msg.Header.Set(subject.HeaderContentType, subject.ContentJSON)
		msg.Header.Set(subject.HeaderMsgID, subject.MsgID(model, id))
		_, err := js.PublishMsg(ctx, msg)
		require.NoError(t, err)
	}
	// status waits for the notification of request id.
	status := func(id string) *teatreev1.RequestStatus {
		var raw *jetstream.RawStreamMsg
		require.Eventually(t, func() bool {
			m, err := ntf.GetLastMsgForSubject(ctx, names.NtfRequest(model, id))
			raw = m
			return err == nil
		}, time.Minute, 50*time.Millisecond, "no notification for %s; logs:\n%s", id, logs)
		s := &teatreev1.RequestStatus{}
		require.NoError(t, wire.Unmarshal(raw.Data, s))
		return s
	}
	// info answers GET /v1/models/{model}. It makes no assertion: it
	// runs in require.Eventually's goroutine too.
	info := func() (*teatreev1.ModelInfo, error) {
		resp, err := http.Get(r.HTTPURL + "/v1/models/" + model)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET model: %s: %s", resp.Status, b)
		}
		mi := &teatreev1.ModelInfo{}
		return mi, wire.Unmarshal(b, mi)
	}

	failed := []string{"r0", "r1", "r2"}
	publish("r0", "create table t (x int)")
	publish("r1", "insert into t values (1)")
	publish("r2", "insert into t values (2)")
	for _, id := range failed {
		s := status(id)
		require.Equal(t, subject.StatusFailed, s.GetStatus(), "%s: %v", id, s)
		require.Equal(t, string(apierr.Unavailable), s.GetError().GetCode(), "%s: %v", id, s)
		require.Contains(t, s.GetError().GetMessage(), "cannot start", id)
		require.Contains(t, s.GetError().GetMessage(), "n1", id)
	}
	require.Contains(t, logs.String(), "db-manager keeps failing; giving its lease up")

	mi, err := info()
	require.NoError(t, err)
	require.Equal(t, "failing", mi.GetState(), "%v", mi)
	fail := mi.GetStartError()
	require.Equal(t, "n1", fail.GetNode())
	require.NotEmpty(t, fail.GetMessage())
	require.NotEmpty(t, fail.GetSince())
	require.Positive(t, fail.GetAttempts())
	require.Equal(t, []string{"n1"}, fail.GetNodes())

	// The operator removes the damaged file: the next request starts the
	// model again and applies.
	require.NoError(t, os.Remove(file))
	publish("r3", "create table t (x int)")
	s := status("r3")
	require.Equal(t, subject.StatusApplied, s.GetStatus(), "%v; logs:\n%s", s, logs)
	require.Eventually(t, func() bool {
		mi, err := info()
		return err == nil && mi.GetState() == "running" && mi.GetStartError() == nil && mi.GetSpec().GetStartFailure() == nil
	}, time.Minute, 50*time.Millisecond, "model not running again; logs:\n%s", logs)

	// One notification per request, none twice.
	ntfInfo, err := ntf.Info(ctx, jetstream.WithSubjectFilter(names.NtfRequest(model, "*")))
	require.NoError(t, err)
	for _, id := range append(failed, "r3") {
		require.Equal(t, uint64(1), ntfInfo.State.Subjects[names.NtfRequest(model, id)], id)
	}
}
