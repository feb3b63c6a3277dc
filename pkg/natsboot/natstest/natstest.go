// Package natstest starts an embedded JetStream server per test, with
// teatree's streams and buckets, on 127.0.0.1 and a free port.
package natstest

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Env is a running server, a connection to it, and handles on teatree's
// streams and buckets.
type Env struct {
	Server *server.Server
	Conn   *nats.Conn
	JS     jetstream.JetStream
	URL    string

	Mut, Evt, Ntf                                      jetstream.Stream
	Models, Owners, Workers, Pins, Results, Deliveries jetstream.KeyValue
}

// Start runs a server for t, stopped in t.Cleanup.
func Start(t testing.TB) *Env {
	t.Helper()
	s, err := natsboot.StartServer(natsboot.ServerConfig{Addr: "127.0.0.1:0", StoreDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(s.Shutdown)
	nc, err := nats.Connect(s.ClientURL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, natsboot.Setup(ctx, js, natsboot.Config{}))
	env := &Env{Server: s, Conn: nc, JS: js, URL: s.ClientURL()}
	names := subject.Default()
	for _, o := range []struct {
		stream *jetstream.Stream
		name   string
	}{{&env.Mut, names.MutStream()}, {&env.Evt, names.EvtStream()}, {&env.Ntf, names.NtfStream()}} {
		*o.stream, err = js.Stream(ctx, o.name)
		require.NoError(t, err)
	}
	for _, o := range []struct {
		kv   *jetstream.KeyValue
		name string
	}{
		{&env.Models, names.ModelsBucket()}, {&env.Owners, names.OwnersBucket()}, {&env.Workers, names.WorkersBucket()},
		{&env.Pins, names.PinsBucket()}, {&env.Results, names.ResultsBucket()}, {&env.Deliveries, names.DeliveriesBucket()},
	} {
		*o.kv, err = js.KeyValue(ctx, o.name)
		require.NoError(t, err)
	}
	return env
}

// WaitAcked waits until the durable consumer of stream has acknowledged
// every message up to seq.
func WaitAcked(t testing.TB, js jetstream.JetStream, stream, durable string, seq uint64, msgAndArgs ...any) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := js.Consumer(context.Background(), stream, durable)
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.AckFloor.Stream >= seq
	}, 15*time.Second, 20*time.Millisecond, msgAndArgs...)
}

// LogBuffer collects a service's log, safe for concurrent writers.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *LogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *LogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}
