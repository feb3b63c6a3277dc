package stack_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/stack"
)

// TestReplicasOfDispatcherAndNotifier runs two processes' worth of
// dispatcher and notifier against one NATS server, with a node and a
// gateway in a third, and stops the leading one in the middle of the load:
// the other takes over both roles, and every request is applied with
// exactly one terminal notification.
func TestReplicasOfDispatcherAndNotifier(t *testing.T) {
	ctx := context.Background()
	env := natstest.Start(t)
	boot := natsboot.Config{LeaseTTL: 2 * time.Second}
	replica := func() *running {
		return runStack(t, stack.Config{
			Services: []string{stack.Dispatcher, stack.Notifier},
			NATSURL:  env.URL, Boot: boot, Data: t.TempDir(),
		})
	}
	// The first replica is ready, so leading, before the second starts.
	first := replica()
	second := replica()
	runStack(t, stack.Config{
		Services: []string{stack.Gateway, stack.Node},
		NATSURL:  env.URL, Boot: boot, Data: t.TempDir(), HTTPAddr: "127.0.0.1:0",
		Node: node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 8, Memory: 1 << 30, Threads: 1},
	})
	for _, role := range []string{stack.Dispatcher, stack.Notifier} {
		require.Contains(t, first.logs.String(), "msg=leading service="+role, "the first replica leads")
		require.Contains(t, second.logs.String(), "msg=\"standing by\" service="+role, "the second stands by")
	}

	names := subject.Default()
	const models, requests = 4, 40
	model := func(i int) string { return fmt.Sprintf("m%d", i) }
	for i := range models {
		_, err := catalog.CreateModel(ctx, env.Models, env.Mut, &teatreev1.ModelSpec{Id: model(i)})
		require.NoError(t, err)
	}
	publish := func(r int) error {
		for i := range models {
			sql := "insert into t values (" + strconv.Itoa(r) + ")"
			if r == 0 {
				sql = "create table t (x int)"
			}
			msg := nats.NewMsg(names.Mut(model(i), subject.OpSQL))
			msg.Data = []byte(`{"sql":"` + sql + `"}`)
			msg.Header.Set(subject.HeaderContentType, subject.ContentJSON)
			msg.Header.Set(subject.HeaderMsgID, subject.MsgID(model(i), "r"+strconv.Itoa(r)))
			if _, err := env.JS.PublishMsg(ctx, msg); err != nil {
				return err
			}
		}
		return nil
	}
	for r := range requests / 2 {
		require.NoError(t, publish(r))
	}
	// More is published while the leader stops, and the rest after it
	// stopped: that is the second replica's alone.
	published := make(chan error, 1)
	go func() {
		for r := requests / 2; r < 3*requests/4; r++ {
			if err := publish(r); err != nil {
				published <- err
				return
			}
		}
		published <- nil
	}()
	first.stop()
	stopped := time.Now()
	require.NoError(t, <-published)
	for r := 3 * requests / 4; r < requests; r++ {
		require.NoError(t, publish(r))
	}
	for _, role := range []string{stack.Dispatcher, stack.Notifier} {
		require.Contains(t, first.logs.String(), "msg=\"stopped leading\" service="+role)
	}

	requestNtf := func() map[string]uint64 {
		info, err := env.Ntf.Info(ctx, jetstream.WithSubjectFilter(names.NtfRequest("*", "*")))
		require.NoError(t, err)
		return info.State.Subjects
	}
	require.Eventually(t, func() bool {
		var n uint64
		for _, c := range requestNtf() {
			n += c
		}
		return n >= models*requests
		// A bound far above what the test needs: it only stops a test
		// that will not finish.
	}, 2*time.Minute, 100*time.Millisecond, "notifications; second replica:\n%s", second.logs)
	t.Logf("all notified %s after the leader stopped", time.Since(stopped))
	for _, role := range []string{stack.Dispatcher, stack.Notifier} {
		require.Contains(t, second.logs.String(), "msg=leading service="+role, "the second replica took over")
	}
	got := requestNtf()
	for i := range models {
		for r := range requests {
			subj := names.NtfRequest(model(i), "r"+strconv.Itoa(r))
			require.Equal(t, uint64(1), got[subj], "notifications on %s", subj)
			last, err := env.Ntf.GetLastMsgForSubject(ctx, subj)
			require.NoError(t, err)
			require.Equal(t, subject.StatusApplied, last.Header.Get(subject.HeaderStatus), "%s: %s", subj, last.Data)
		}
	}
	require.Len(t, got, models*requests, "no notification for a request that was not made")
	require.False(t, strings.Contains(second.logs.String(), "level=ERROR"), "second replica:\n%s", second.logs)
}
