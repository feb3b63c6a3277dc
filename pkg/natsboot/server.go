// Package natsboot starts the embedded NATS server and creates, or checks,
// the streams and KV buckets of the contract. Every service calls Setup at
// start, so any subset of services can come up first against any server.
package natsboot

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded NATS server of `teatree up`.
type ServerConfig struct {
	// Addr is host:port to listen on; port 0 picks a free one.
	Addr string
	// StoreDir holds JetStream's files.
	StoreDir string
	// SyncAlways makes JetStream fsync every write before it acknowledges.
	// Without it JetStream syncs on an interval (SyncInterval).
	SyncAlways bool
	// SyncInterval is JetStream's fsync interval when SyncAlways is off;
	// zero keeps the server's default (2 minutes).
	SyncInterval time.Duration
	// MaxPayload is the largest message the server accepts; default 8 MiB.
	MaxPayload int32
}

// DefaultMaxPayload is the embedded server's max payload: large enough for
// an Arrow batch of tens of thousands of rows, within NATS's advice.
const DefaultMaxPayload = 8 << 20

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts connections.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: %w", cfg.Addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats address %q: bad port: %w", cfg.Addr, err)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else if ln, err := net.Listen("tcp", cfg.Addr); err != nil {
		// Fail at once, and say what to do, rather than time out below.
		return nil, fmt.Errorf("nats address %s is not free (is another teatree or NATS server running? pick another with --nats): %w", cfg.Addr, err)
	} else {
		ln.Close()
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	opts := &server.Options{
		ServerName:   "teatree",
		Host:         host,
		Port:         port,
		JetStream:    true,
		StoreDir:     cfg.StoreDir,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
		MaxPayload:   cfg.MaxPayload,
		NoSigs:       true,
		// nats-server caps consumers per stream at 1,000 unless the stream
		// or the account says otherwise. TT_MUT says so itself (see
		// MaxModelConsumers); readers of TT_NTF (SSE, late subscribers)
		// hold one each, so the embedded server has no such cap.
		JetStreamLimits: server.JSLimitOpts{DefaultMaxConsumers: -1},
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("new nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server on %s: not ready after 30s", cfg.Addr)
	}
	return s, nil
}
