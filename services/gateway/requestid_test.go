package gateway

import (
	"bytes"
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestSameRequestIDOnTwoModelsIsTwoRequests(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "a")
	env.createModel(t, "b")
	rows := []byte("id\n1\n")
	header := []string{"Content-Type", "text/csv", "Idempotency-Key", "k-1"}

	onA := accepted(t, env.send(t, http.MethodPost, "/v1/models/a/tables/t/rows", rows, header...))
	onB := accepted(t, env.send(t, http.MethodPost, "/v1/models/b/tables/t/rows", rows, header...))
	require.False(t, onA.GetDuplicate())
	require.False(t, onB.GetDuplicate(), "an id is scoped to its model")
	require.NotEqual(t, onA.GetSeq(), onB.GetSeq())
	require.Equal(t, "k-1", onA.GetRequestId())
	require.Equal(t, "k-1", onB.GetRequestId())
	for model, seq := range map[string]uint64{"a": onA.GetSeq(), "b": onB.GetSeq()} {
		msg, err := env.mut.GetMsg(ctx, seq)
		require.NoError(t, err)
		require.Equal(t, subject.MsgID(model, "k-1"), msg.Header.Get(subject.HeaderMsgID))
	}

	// A true retry on one model is still the same request.
	again := accepted(t, env.send(t, http.MethodPost, "/v1/models/a/tables/t/rows", rows, header...))
	require.True(t, again.GetDuplicate())
	require.Equal(t, onA.GetSeq(), again.GetSeq())
	require.EqualValues(t, 2, env.mutCount(t))
}

func TestGetRequestTakesSeqIDs(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")

	// seq- ids name requests published without an id: they can be looked
	// up, though no client may choose one.
	r := env.send(t, http.MethodGet, "/v1/models/sales/requests/seq-7", nil)
	requireError(t, r, http.StatusNotFound, "not_found")
	r = env.send(t, http.MethodGet, "/v1/models/sales/requests/a.b", nil)
	requireError(t, r, http.StatusBadRequest, "invalid_argument")
}

// flakyJS is a real JetStream client whose next publishes fail as if the
// ack had been lost, after storing the message when stored is set.
type flakyJS struct {
	jetstream.JetStream
	fail   atomic.Int32
	stored bool
	tries  atomic.Int32
}

func (f *flakyJS) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	f.tries.Add(1)
	if f.fail.Add(-1) >= 0 {
		if f.stored {
			if _, err := f.JetStream.PublishMsg(ctx, msg, opts...); err != nil {
				return nil, err
			}
		}
		return nil, nats.ErrTimeout
	}
	return f.JetStream.PublishMsg(ctx, msg, opts...)
}

func flaky(stored bool) (*flakyJS, func(*Config, *Deps)) {
	f := &flakyJS{stored: stored}
	return f, func(_ *Config, d *Deps) {
		f.JetStream = d.JS
		d.JS = f
	}
}

func TestPublishTimeoutIsRetriedWithTheSameMessageID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, configure := flaky(true)
	env := start(t, configure)
	env.createModel(t, "sales")

	f.fail.Store(1) // stored, but the ack is lost
	a := accepted(t, env.send(t, http.MethodPost, "/v1/models/sales/tables/orders/rows", []byte("id\n1\n"),
		"Content-Type", "text/csv", "Idempotency-Key", "r-1"))
	require.EqualValues(t, 2, f.tries.Load(), "one retry")
	require.EqualValues(t, 1, env.mutCount(t), "the retry was dropped as a duplicate")
	msg, err := env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, "sales.r-1", msg.Header.Get(subject.HeaderMsgID))
}

func TestFailedPublishKeepsTheUploadForARetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, configure := flaky(false)
	env := start(t, configure)
	env.createModel(t, "sales")
	body := bytes.Repeat([]byte("0123456789abcdef"), (natsboot.DefaultMaxPayload+1<<20)/16)
	send := func() response {
		return env.sendReader(t, http.MethodPost, "/v1/models/sales/tables/orders/rows",
			bytes.NewReader(body), "Content-Type", "application/vnd.apache.arrow.stream", "Idempotency-Key", "big-1")
	}

	f.fail.Store(publishTries) // every try of the first request fails
	r := send()
	requireError(t, r, http.StatusServiceUnavailable, "unavailable")
	require.Contains(t, string(r.body), "retry with the same request id")
	require.EqualValues(t, publishTries, f.tries.Load())
	require.Zero(t, env.mutCount(t))
	stored, err := env.blobs.Get(ctx, "uploads/sales/big-1")
	require.NoError(t, err, "a failed publish may have been stored: its upload stays")
	require.True(t, bytes.Equal(body, stored))

	// The client's retry with the same id is one request.
	a := accepted(t, send())
	require.False(t, a.GetDuplicate())
	again := accepted(t, send())
	require.True(t, again.GetDuplicate())
	require.Equal(t, a.GetSeq(), again.GetSeq())
	require.EqualValues(t, 1, env.mutCount(t))
	msg, err := env.mut.GetMsg(ctx, a.GetSeq())
	require.NoError(t, err)
	require.Equal(t, "uploads/sales/big-1", msg.Header.Get(subject.HeaderBodyRef))
}

func TestSameRequestIDOnTwoModelsBothApply(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "a")
	env.createModel(t, "b")
	for _, model := range []string{"a", "b"} {
		sent := notifyOnPublish(t, env, model, "k-1", subject.StatusApplied, "")
		r := env.send(t, http.MethodPost, "/v1/models/"+model+"/sql?wait=applied&timeout=10s", []byte(`{"sql":"insert into t values (1)"}`),
			"Idempotency-Key", "k-1")
		require.Equal(t, http.StatusOK, r.status, "model %s: body %s", model, r.body)
		require.Equal(t, string(<-sent), string(r.body))
		require.Equal(t, model, r.header.Get(subject.HeaderModel))
	}
	require.EqualValues(t, 2, env.mutCount(t))
}
