package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// notify plays the notifier: it publishes the terminal notification of a
// request to TT_NTF and returns its body.
func notify(ctx context.Context, env *testEnv, model, id string, seq uint64, status string, errCode string) ([]byte, error) {
	rs := &teatreev1.RequestStatus{RequestId: id, Model: model, Op: subject.OpSQL, Status: status, Seq: seq}
	if errCode != "" {
		rs.Error = &teatreev1.Error{Code: errCode, Message: "Binder Error: column \"x\" not found"}
	} else {
		rows := int64(1)
		rs.RowsAffected = &rows
		rs.AppliedAt = time.Now().UTC().Format(time.RFC3339)
	}
	body, err := wire.Marshal(rs)
	if err != nil {
		return nil, err
	}
	msg := &nats.Msg{Subject: env.names.NtfRequest(model, id), Header: nats.Header{}, Data: body}
	msg.Header.Set(subject.HeaderMsgID, subject.RequestNtfMsgID(model, id, 1))
	msg.Header.Set(subject.HeaderModel, model)
	msg.Header.Set(subject.HeaderRequestID, id)
	msg.Header.Set(subject.HeaderStatus, status)
	msg.Header.Set(subject.HeaderSeq, strconv.FormatUint(seq, 10))
	msg.Header.Set(subject.HeaderPage, "1")
	msg.Header.Set(subject.HeaderPages, "1")
	msg.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	if _, err := env.nats.JS.PublishMsg(ctx, msg); err != nil {
		return nil, err
	}
	return body, nil
}

// notifyOnPublish plays the notifier for the next request of model: once
// the request lands in TT_MUT, it publishes its outcome. The result comes
// on the channel once the test has its answer.
func notifyOnPublish(t *testing.T, env *testEnv, model, id, status, errCode string) <-chan []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	// From the start of the model's log, not only new messages: an
	// ordered consumer is made on its first Next, which may come after
	// the request landed.
	cons, err := env.mut.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{env.names.MutModel(model)},
	})
	require.NoError(t, err)
	sent := make(chan []byte, 1)
	errs := make(chan error, 1)
	go func() {
		body, err := func() ([]byte, error) {
			for {
				msg, err := cons.Next(jetstream.FetchContext(ctx))
				if err != nil {
					return nil, fmt.Errorf("watch TT_MUT: %w", err)
				}
				if msg.Headers().Get(subject.HeaderMsgID) != subject.MsgID(model, id) {
					continue
				}
				meta, err := msg.Metadata()
				if err != nil {
					return nil, err
				}
				return notify(ctx, env, model, id, meta.Sequence.Stream, status, errCode)
			}
		}()
		if err != nil {
			errs <- err
			return
		}
		sent <- body
	}()
	t.Cleanup(func() {
		select {
		case err := <-errs:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("notifier: %v", err)
			}
		default:
		}
	})
	return sent
}

func TestWaitApplied(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")
	sent := notifyOnPublish(t, env, "sales", "w-1", subject.StatusApplied, "")

	r := env.send(t, http.MethodPost, "/v1/models/sales/sql?wait=applied", []byte(`{"sql":"insert into t values (1)"}`),
		"Idempotency-Key", "w-1")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.Equal(t, string(<-sent), string(r.body), "the notification, as the notifier published it")
	require.Equal(t, subject.StatusApplied, r.header.Get(subject.HeaderStatus))
	require.Equal(t, "application/json", r.header.Get("Content-Type"))

	// A retry finds the outcome in TT_NTF: no notifier publishes it again.
	again := env.send(t, http.MethodPost, "/v1/models/sales/sql?wait=applied&timeout=5s", []byte(`{"sql":"insert into t values (1)"}`),
		"Idempotency-Key", "w-1")
	require.Equal(t, http.StatusOK, again.status, "body %s", again.body)
	require.Equal(t, string(r.body), string(again.body))
	require.EqualValues(t, 1, env.mutCount(t))
}

func TestWaitFailed(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")
	sent := notifyOnPublish(t, env, "sales", "w-2", subject.StatusFailed, "sql_error")

	r := env.send(t, http.MethodPost, "/v1/models/sales/sql?wait=applied", []byte(`{"sql":"select x"}`),
		"Idempotency-Key", "w-2")
	require.Equal(t, http.StatusUnprocessableEntity, r.status, "body %s", r.body)
	require.Equal(t, string(<-sent), string(r.body))
	var rs teatreev1.RequestStatus
	require.NoError(t, wire.Unmarshal(r.body, &rs))
	require.Equal(t, "sql_error", rs.GetError().GetCode())
}

func TestWaitTimesOut(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")

	r := env.send(t, http.MethodPost, "/v1/models/sales/sql?wait=applied&timeout=200ms", []byte(`{"sql":"select 1"}`),
		"Idempotency-Key", "w-3")
	requireError(t, r, http.StatusGatewayTimeout, "deadline_exceeded")
	require.Contains(t, string(r.body), "w-3")
	require.Contains(t, string(r.body), "seq 1")
	require.EqualValues(t, 1, env.mutCount(t), "the request was accepted all the same")
}

func TestGetRequest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "sales")
	a := accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/sql", []byte(`{"sql":"select 1"}`), "Idempotency-Key", "g-1"))

	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/requests/g-1", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/requests/g.1", nil), http.StatusBadRequest, "invalid_argument")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/Sales/requests/g-1", nil), http.StatusBadRequest, "invalid_argument")

	body, err := notify(ctx, env, "sales", "g-1", a.GetSeq(), subject.StatusFailed, "sql_error")
	require.NoError(t, err)
	r := env.send(t, http.MethodGet, "/v1/models/sales/requests/g-1", nil)
	require.Equal(t, http.StatusOK, r.status, "a failed request's outcome is found all the same")
	require.Equal(t, string(body), string(r.body))
	require.Equal(t, subject.StatusFailed, r.header.Get(subject.HeaderStatus))
	require.Equal(t, strconv.FormatUint(a.GetSeq(), 10), r.header.Get(subject.HeaderSeq))
}

// TestWaitRetryAfterWindow: a retry after JetStream's duplicate window gets
// a new seq, but the model drops it as the request it already applied, so
// the stored outcome (with the first seq) answers it.
func TestWaitRetryAfterWindow(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")
	body, err := notify(context.Background(), env, "sales", "w-old", 1, subject.StatusApplied, "")
	require.NoError(t, err)
	r := env.send(t, http.MethodPost, "/v1/models/sales/sql?wait=applied&timeout=5s", []byte(`{"sql":"insert into t values (1)"}`),
		"Idempotency-Key", "w-old")
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.JSONEq(t, string(body), string(r.body))
}
