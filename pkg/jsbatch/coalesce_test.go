package jsbatch_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/jsbatch"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
)

func stream(t *testing.T) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	env := natstest.Start(t)
	st, err := env.JS.CreateStream(context.Background(), jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, AllowAtomicPublish: true})
	require.NoError(t, err)
	return env.JS, st
}

// first is a message written only where its subject has none yet.
func first(subj string) *nats.Msg {
	m := nats.NewMsg(subj)
	m.Data = []byte(subj)
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	return m
}

func wrongLast(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// Many callers at once: every message is written exactly once, and each
// caller's in order.
func TestCoalescerWritesEveryCallersMessages(t *testing.T) {
	js, st := stream(t)
	c := jsbatch.NewCoalescer(js, slog.Default(), wrongLast)
	const callers, each = 50, 4
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			var msgs []*nats.Msg
			for k := range each {
				msgs = append(msgs, first(fmt.Sprintf("t.%d.%d", i, k)))
			}
			require.NoError(t, c.Publish(context.Background(), msgs))
		})
	}
	wg.Wait()
	info, err := st.Info(context.Background())
	require.NoError(t, err)
	require.Equal(t, uint64(callers*each), info.State.Msgs)
	for i := range callers {
		var last uint64
		for k := range each {
			m, err := st.GetLastMsgForSubject(context.Background(), fmt.Sprintf("t.%d.%d", i, k))
			require.NoError(t, err)
			require.Greater(t, m.Sequence, last, "caller %d's messages in order", i)
			last = m.Sequence
		}
	}
}

// Whether or not the callers are combined, a batch refused for one
// caller's message (its subject has a message already) is written caller
// by caller: the others' messages are written, the refused one is done as
// Done says, and an error Done does not accept reaches its caller.
func TestCoalescerRefusedBatchFallsBackPerCaller(t *testing.T) {
	js, st := stream(t)
	ctx := context.Background()
	_, err := js.PublishMsg(ctx, first("t.taken"))
	require.NoError(t, err)
	c := jsbatch.NewCoalescer(js, slog.Default(), wrongLast)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, msgs := range [][]*nats.Msg{
		{first("t.a"), first("t.b")},
		{first("t.taken"), first("t.c")},
		{first("t.d")},
	} {
		wg.Go(func() { errs[i] = c.Publish(ctx, msgs) })
	}
	wg.Wait()
	require.Equal(t, []error{nil, nil, nil}, errs)
	for _, subj := range []string{"t.a", "t.b", "t.c", "t.d", "t.taken"} {
		_, err := st.GetLastMsgForSubject(ctx, subj)
		require.NoError(t, err, subj)
	}
	info, err := st.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(5), info.State.Msgs, "t.taken once")

	// Without a Done that accepts it, the refusal is the caller's error.
	strict := jsbatch.NewCoalescer(js, slog.Default(), nil)
	require.Error(t, strict.Publish(ctx, []*nats.Msg{first("t.taken")}))
}
