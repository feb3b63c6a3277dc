package natsboot_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Three services set up R3 streams and buckets at once against a cluster
// whose first server runs alone, so that every first attempt fails; the
// other two servers then start together, and all three services succeed
// instead of exiting.
func TestSetupRetryWaitsForAClusterStillForming(t *testing.T) {
	t.Parallel()
	c := natstest.NewStoppedCluster(t, 3)
	c.Start(0)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const services = 3
	logs := make([]*natstest.LogBuffer, services)
	errs := make([]error, services)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	for i := range services {
		logs[i] = &natstest.LogBuffer{}
		nc, err := nats.Connect(c.URLs(), nats.MaxReconnects(-1))
		require.NoError(t, err)
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		require.NoError(t, err)
		log := slog.New(slog.NewTextHandler(logs[i], nil))
		wg.Go(func() { errs[i] = natsboot.SetupRetry(ctx, js, natsboot.Config{Replicas: 3}, log) })
	}
	require.Eventually(t, func() bool {
		for _, l := range logs {
			if !strings.Contains(l.String(), "retrying") {
				return false
			}
		}
		return true
	}, 2*time.Minute, 20*time.Millisecond, "every service retries while one server of three runs")

	var starts sync.WaitGroup
	starts.Go(func() { c.Start(1) })
	starts.Go(func() { c.Start(2) })
	starts.Wait()
	wg.Wait()
	for i, err := range errs {
		require.NoError(t, err, "service %d; its log:\n%s", i, logs[i])
	}

	js := c.Connect()
	names := subject.Default()
	for _, name := range []string{names.MutStream(), names.CallStream(), names.EvtStream(), names.NtfStream(), names.DeadStream()} {
		s, err := js.Stream(ctx, name)
		require.NoError(t, err)
		require.Equal(t, 3, s.CachedInfo().Config.Replicas, name)
	}
	for _, name := range []string{names.ModelsBucket(), names.OwnersBucket(), names.WorkersBucket(), names.ResultsBucket(), names.DeliveriesBucket(), names.PinsBucket()} {
		kv, err := js.KeyValue(ctx, name)
		require.NoError(t, err)
		st, err := kv.Status(ctx)
		require.NoError(t, err)
		require.Equal(t, 3, st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas, name)
	}
}

// TT_MUT takes writes after the server leading it is shut down, and while
// that server restarts; once it has caught up, the stream holds each
// acknowledged write once.
func TestStreamStaysWritableWhileAServerRestarts(t *testing.T) {
	t.Parallel()
	c, js := natstest.NewCluster(t, 3)
	ctx := context.Background()
	names := subject.Default()
	stream := names.MutStream()

	written := 0
	write := func() {
		t.Helper()
		written++
		publishUntilAcked(t, js, names.Mut("sales", "append"), fmt.Sprintf("w-%d", written))
	}
	for range 10 {
		write()
	}
	leader := -1
	require.Eventually(t, func() bool {
		for i := range 3 {
			if s := c.Server(i); s != nil && s.JetStreamIsStreamLeader("$G", stream) {
				leader = i
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "TT_MUT has a leader")

	c.Shutdown(leader)
	for range 10 {
		write()
	}
	restarted := make(chan struct{})
	go func() {
		defer close(restarted)
		c.Start(leader)
	}()
	for range 10 {
		write()
	}
	<-restarted
	for range 10 {
		write()
	}

	require.Eventually(t, func() bool {
		return c.Server(leader).JetStreamIsStreamCurrent("$G", stream)
	}, time.Minute, 20*time.Millisecond, "the restarted server catches up on TT_MUT")
	s, err := js.Stream(ctx, stream)
	require.NoError(t, err)
	info, err := s.Info(ctx)
	require.NoError(t, err)
	require.Equal(t, uint64(written), info.State.Msgs, "each acknowledged write once")
}

// publishUntilAcked publishes with a message id until the stream
// acknowledges it, as teatree's clients do; the id keeps a retry after a
// lost acknowledgement from writing twice.
func publishUntilAcked(t *testing.T, js jetstream.JetStream, subj, id string) {
	t.Helper()
	var err error
	for range 60 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = js.Publish(ctx, subj, []byte(id), jetstream.WithMsgID(id))
		cancel()
		if err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(t, err, "publish %s", id)
}
