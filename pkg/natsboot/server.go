// Package natsboot starts the embedded NATS server and creates, or checks,
// the streams and KV buckets of the contract. Every service calls Setup at
// start, so any subset of services can come up first against any server.
package natsboot

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded NATS server of `teatree up`, or one
// server of a local cluster (`teatree dev cluster`, natstest.NewCluster).
type ServerConfig struct {
	// Name is the server's name, "teatree" if empty. In a cluster every
	// server needs its own, kept across restarts: JetStream knows a peer by
	// it.
	Name string
	// Addr is host:port to listen on; port 0 picks a free one.
	Addr string
	// Cluster, when its Name is set, makes the server one of a cluster.
	Cluster ClusterConfig
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
	// TLS, when set, is the certificate the server presents: it then
	// requires TLS of every client (tlsconf.Load or tlsconf.Auto).
	TLS *tls.Config
}

// ClusterConfig is what a server of a cluster needs besides its own
// configuration: the cluster's name, where it listens for routes from the
// other servers, and where it finds them.
type ClusterConfig struct {
	// Name is the cluster's name, the same on every server.
	Name string
	// Addr is host:port to listen on for routes; port 0 picks a free one.
	Addr string
	// Routes are the route URLs (nats-route://host:port) of other servers;
	// one is enough, the servers tell each other of the rest.
	Routes []string
}

// DefaultMaxPayload is the embedded server's max payload: large enough for
// an Arrow batch of tens of thousands of rows, within NATS's advice.
const DefaultMaxPayload = 8 << 20

// StartServer starts an embedded NATS server with JetStream and waits until
// it accepts connections.
func StartServer(cfg ServerConfig) (*server.Server, error) {
	s, _, err := startServer(cfg, func(*server.Options) {})
	return s, err
}

// startServer is StartServer with a last change to the options (the
// users of a secured server), which it returns as the server took them.
func startServer(cfg ServerConfig, adjust func(*server.Options)) (*server.Server, *server.Options, error) {
	host, portStr, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("nats address %q: %w", cfg.Addr, err)
	}
	port, err := listenPort(cfg.Addr, portStr)
	if err != nil {
		return nil, nil, err
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = DefaultMaxPayload
	}
	if cfg.Name == "" {
		cfg.Name = "teatree"
	}
	opts := &server.Options{
		ServerName:   cfg.Name,
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
		TLSConfig:       cfg.TLS,
		// nats-server's default of 2 s for a client's TLS handshake is
		// short on a busy machine.
		TLSTimeout: 10,
	}
	if cfg.Cluster.Name != "" {
		if err := clusterOptions(opts, cfg.Cluster); err != nil {
			return nil, nil, err
		}
	}
	adjust(opts)
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("new nats server: %w", err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, nil, fmt.Errorf("nats server on %s: not ready after 30s", cfg.Addr)
	}
	return s, opts, nil
}

// listenPort parses the port of addr; 0 means any free port. A fixed port
// must be free: fail at once, and say what to do, rather than time out
// waiting for a server that cannot listen.
func listenPort(addr, portStr string) (int, error) {
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, fmt.Errorf("nats address %q: bad port: %w", addr, err)
	}
	if port == 0 {
		return server.RANDOM_PORT, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, fmt.Errorf("nats address %s is not free (is another teatree or NATS server running? pick another address): %w", addr, err)
	}
	ln.Close()
	return port, nil
}

func clusterOptions(opts *server.Options, c ClusterConfig) error {
	host, portStr, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("cluster address %q: %w", c.Addr, err)
	}
	port, err := listenPort(c.Addr, portStr)
	if err != nil {
		return err
	}
	if opts.ServerName == "teatree" {
		return errors.New("a server of a cluster needs a name of its own (ServerConfig.Name)")
	}
	opts.Cluster = server.ClusterOpts{Name: c.Name, Host: host, Port: port}
	for _, r := range c.Routes {
		u, err := url.Parse(r)
		if err != nil || u.Scheme != "nats-route" || u.Port() == "" {
			return fmt.Errorf("cluster route %q: want nats-route://HOST:PORT", r)
		}
		opts.Routes = append(opts.Routes, u)
	}
	return nil
}

// HangUp listens on 127.0.0.1 and hangs up on every connection until the
// listener is closed: the route a clustered server is started with before
// any other server's address is known (it refuses to start without one),
// and a peer that never answers, at an address nothing else can take.
func HangUp() (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	return ln, nil
}
