// Package natstest starts an embedded JetStream server per test, with
// teatree's streams and buckets, on 127.0.0.1 and a free port.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/natsboot"
)

// Env is a running server and a connection to it.
type Env struct {
	Server *server.Server
	Conn   *nats.Conn
	JS     jetstream.JetStream
	URL    string
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
	return &Env{Server: s, Conn: nc, JS: js, URL: s.ClientURL()}
}
