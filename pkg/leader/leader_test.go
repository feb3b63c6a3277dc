package leader_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/leader"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// bound only stops a test that will not finish; no assertion is on time.
const bound = 30 * time.Second

// ttl is short, so that a lapsed key expires soon, and long enough that a
// loaded machine renews in time (a late renewal would not fail a test:
// it only makes a leader stand down and campaign again).
const ttl = 2 * time.Second

func bucket(t *testing.T, env *natstest.Env, ttl time.Duration) jetstream.KeyValue {
	t.Helper()
	kv, err := env.JS.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: "test_leaders", TTL: ttl})
	require.NoError(t, err)
	return kv
}

// candidate runs a candidate until its ctx is cancelled; stop cancels it
// and waits for Run to return nil.
type candidate struct{ stop func() }

func start(t *testing.T, c leader.Candidate, lead leader.Lead) *candidate {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, lead) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err, c.ID)
		case <-time.After(bound):
			t.Fatalf("%s: Run did not return after its context ended", c.ID)
		}
	}
	t.Cleanup(stop)
	return &candidate{stop: stop}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(bound):
		t.Fatalf("no %s", what)
		panic("unreachable")
	}
}

// TestOneLeaderAtATime: of three candidates one leads at a time, and when
// the leader stops another leads, until the last.
func TestOneLeaderAtATime(t *testing.T) {
	env := natstest.Start(t)
	kv := bucket(t, env, ttl)
	var active atomic.Int32
	var overlaps, afterStop atomic.Int32
	var stopping [3]atomic.Bool
	leading := make(chan int, 100)
	lead := func(i int) leader.Lead {
		return func(ctx context.Context, _ uint64) error {
			if active.Add(1) > 1 {
				overlaps.Add(1)
			}
			if stopping[i].Load() {
				afterStop.Add(1)
			}
			leading <- i
			<-ctx.Done()
			active.Add(-1)
			return nil
		}
	}
	var cands [3]*candidate
	for i := range cands {
		cands[i] = start(t, leader.Candidate{KV: kv, Role: "dispatcher", ID: fmt.Sprintf("c%d", i), Log: slog.Default()}, lead(i))
	}
	for range cands {
		i := receive(t, leading, "leader")
		// A leader whose renewal came late leads again: a message left
		// over from a candidate already stopped is not a new leader.
		for stopping[i].Load() {
			i = receive(t, leading, "leader")
		}
		stopping[i].Store(true)
		cands[i].stop()
	}
	require.Zero(t, overlaps.Load(), "more than one lead at once")
	require.Zero(t, afterStop.Load(), "a candidate led after it stopped")
	_, err := kv.Get(context.Background(), "dispatcher")
	require.ErrorIs(t, err, jetstream.ErrKeyNotFound, "a leader that stops gives up its key")
}

// term is what a lead saw: its term, and whether its context ended.
type term struct {
	n     uint64
	ended bool
}

func recordingLead(terms chan<- term) leader.Lead {
	return func(ctx context.Context, n uint64) error {
		terms <- term{n: n}
		<-ctx.Done()
		terms <- term{n: n, ended: true}
		return nil
	}
}

// TestLeaderStopsWhenItsKeyIsTaken: a key overwritten behind the
// leader's back fails its next renewal; it stops leading and stands by
// until the key is free again.
func TestLeaderStopsWhenItsKeyIsTaken(t *testing.T) {
	env := natstest.Start(t)
	kv := bucket(t, env, ttl)
	ctx := context.Background()
	terms := make(chan term, 10)
	standby := make(chan struct{}, 10)
	start(t, leader.Candidate{KV: kv, Role: "notifier", ID: "c0", Log: slog.Default(), Standby: func() { standby <- struct{}{} }}, recordingLead(terms))

	first := receive(t, terms, "lead")
	require.False(t, first.ended)
	_, err := kv.Put(ctx, "notifier", []byte("intruder"))
	require.NoError(t, err)
	require.Equal(t, term{n: first.n, ended: true}, receive(t, terms, "end of the lead"))
	receive(t, standby, "standby")

	require.NoError(t, kv.Delete(ctx, "notifier"))
	second := receive(t, terms, "second lead")
	require.False(t, second.ended)
	require.Greater(t, second.n, first.n)
}

// TestFailedLeadCampaignsAgain: a lead that fails gives the role up, to
// a standby or, after a pause, to the same candidate again; Run goes on.
func TestFailedLeadCampaignsAgain(t *testing.T) {
	env := natstest.Start(t)
	kv := bucket(t, env, ttl)
	terms := make(chan uint64, 10)
	var failed atomic.Bool
	start(t, leader.Candidate{KV: kv, Role: "dispatcher", ID: "c0", Log: slog.Default()}, func(ctx context.Context, n uint64) error {
		terms <- n
		if !failed.Swap(true) {
			return errors.New("consumer of TT_CALL: context deadline exceeded")
		}
		<-ctx.Done()
		return nil
	})
	first := receive(t, terms, "lead")
	second := receive(t, terms, "lead after the failure")
	require.Greater(t, second, first, "a new term")
}

// TestLeaderStopsWithoutNATS: a leader whose connection is gone cannot
// renew, and stops leading.
func TestLeaderStopsWithoutNATS(t *testing.T) {
	env := natstest.Start(t)
	nc, err := nats.Connect(env.URL)
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	bucket(t, env, ttl)
	kv, err := js.KeyValue(context.Background(), "test_leaders")
	require.NoError(t, err)
	terms := make(chan term, 10)
	start(t, leader.Candidate{KV: kv, Role: "notifier", ID: "c0", Log: slog.Default()}, recordingLead(terms))

	first := receive(t, terms, "lead")
	nc.Close()
	require.Equal(t, term{n: first.n, ended: true}, receive(t, terms, "end of the lead"))
}

// TestBucketWithoutTTL: without a TTL a lost leader's key would never
// expire; Run refuses the bucket.
func TestBucketWithoutTTL(t *testing.T) {
	env := natstest.Start(t)
	kv := bucket(t, env, 0)
	err := leader.Candidate{KV: kv, Role: "notifier", ID: "c0", Log: slog.Default()}.Run(context.Background(),
		func(context.Context, uint64) error { t.Fatal("led"); return nil })
	require.ErrorContains(t, err, "has no TTL")
}

// TestSetupMakesTheBucket: natsboot.Setup makes tt_leaders with the lease
// TTL as the election's TTL.
func TestSetupMakesTheBucket(t *testing.T) {
	env := natstest.Start(t)
	ctx := context.Background()
	require.NoError(t, natsboot.Setup(ctx, env.JS, natsboot.Config{LeaseTTL: 3 * time.Second}))
	kv, err := env.JS.KeyValue(ctx, subject.Default().LeadersBucket())
	require.NoError(t, err)
	st, err := kv.Status(ctx)
	require.NoError(t, err)
	require.Equal(t, 3*time.Second, st.TTL())
}
