// Package gateway is teatree's HTTP entry point (CONTRACT.md, "HTTP"):
// it takes mutations and publishes them to TT_MUT, reports models and
// request outcomes from the catalog and TT_NTF, and serves snapshot files
// from the blob store. It keeps no state between requests, so any number
// of gateways can run side by side.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Defaults of Config.
const (
	DefaultAddr        = "127.0.0.1:8080"
	DefaultMaxBody     = 256 << 20
	DefaultWaitTimeout = 30 * time.Second
)

// shutdownGrace is how long Run lets requests in flight finish once its
// context ends.
const shutdownGrace = 5 * time.Second

// Config configures a gateway.
type Config struct {
	// Addr is the listen address Run uses when it is given no listener.
	Addr string
	// Names builds every subject, stream and bucket name.
	Names subject.Names
	// MaxBody is the largest HTTP request body accepted, in bytes.
	MaxBody int64
	// WaitTimeout is how long ?wait=applied waits for the outcome; a
	// request's ?timeout= may only lower it.
	WaitTimeout time.Duration
	// Auth is the access policy (--auth): every /v1/ request then needs a
	// bearer token, a role on its model, and stays within its principal's
	// limits. Nil leaves the gateway open to anyone who reaches it.
	Auth *auth.Holder
}

// WithDefaults fills zero fields with their defaults.
func (c Config) WithDefaults() Config {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Names == (subject.Names{}) {
		c.Names = subject.Default()
	}
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = DefaultWaitTimeout
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Names == (subject.Names{}) {
		errs = append(errs, errors.New("names: not set"))
	}
	if c.MaxBody <= 0 {
		errs = append(errs, fmt.Errorf("max body %d: want more than 0", c.MaxBody))
	}
	if c.WaitTimeout <= 0 {
		errs = append(errs, fmt.Errorf("wait timeout %s: want more than 0", c.WaitTimeout))
	}
	return errors.Join(errs...)
}

// Deps are the connections and stores a gateway works with.
type Deps struct {
	NC     *nats.Conn
	JS     jetstream.JetStream
	Models jetstream.KeyValue // tt_models
	Owners jetstream.KeyValue // tt_owners
	// Pins is tt_pins; nil refuses pins with unavailable.
	Pins jetstream.KeyValue
	// Functions is tt_functions; nil refuses functions and calls with
	// unavailable.
	Functions jetstream.KeyValue
	Blobs     blob.Store
	// Calls and Compute are tt_calls (compute calls' records) and
	// tt_compute (compute workers' heartbeats).
	Calls   jetstream.KeyValue
	Compute jetstream.KeyValue
	// Log receives a Debug line per request and the internal errors; nil
	// discards them.
	Log *slog.Logger
	// Ready returns nil once every service of the process is ready; it
	// answers /readyz. Nil means the gateway alone decides.
	Ready func() error
}

func (d Deps) validate() error {
	var errs []error
	if d.NC == nil {
		errs = append(errs, errors.New("nats connection: not set"))
	}
	if d.JS == nil {
		errs = append(errs, errors.New("jetstream: not set"))
	}
	if d.Models == nil {
		errs = append(errs, errors.New("models bucket: not set"))
	}
	if d.Owners == nil {
		errs = append(errs, errors.New("owners bucket: not set"))
	}
	if d.Blobs == nil {
		errs = append(errs, errors.New("blob store: not set"))
	}
	if d.Calls == nil {
		errs = append(errs, errors.New("calls bucket: not set"))
	}
	if d.Compute == nil {
		errs = append(errs, errors.New("compute bucket: not set"))
	}
	return errors.Join(errs...)
}

// Gateway serves the HTTP API.
type Gateway struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	streams *streams
	limits  limits
	handler http.Handler
	// closing ends long-lived responses (event streams) when the server
	// shuts down, which would otherwise wait for them.
	closing chan struct{}
}

// New returns a gateway for cfg, with defaults applied.
func New(cfg Config, deps Deps) (*Gateway, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway config: %w", err)
	}
	if err := deps.validate(); err != nil {
		return nil, fmt.Errorf("gateway deps: %w", err)
	}
	log := deps.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{cfg: cfg, deps: deps, log: log, streams: newStreams(deps.JS), closing: make(chan struct{})}
	g.handler = g.logRequests(g.authenticate(g.routes()))
	return g, nil
}

// Handler returns the gateway's HTTP handler.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Run serves on ln, or on cfg.Addr when ln is nil, until ctx ends; then it
// lets requests in flight finish for a few seconds and cuts off the rest
// (such as a long ?wait=applied). It returns nil after such a stop.
func (g *Gateway) Run(ctx context.Context, ln net.Listener) error {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", g.cfg.Addr); err != nil {
			return fmt.Errorf("gateway listen: %w", err)
		}
	}
	srv := &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		// The server's own errors (a failed TLS handshake, plain HTTP
		// sent to HTTPS) go to the gateway's log, not to stderr unadorned.
		ErrorLog: slog.NewLogLogger(g.log.Handler(), slog.LevelInfo),
	}
	srv.RegisterOnShutdown(func() { close(g.closing) })
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	g.log.InfoContext(ctx, "gateway listening", "addr", ln.Addr().String())
	select {
	case err := <-served:
		return fmt.Errorf("gateway serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		g.log.WarnContext(ctx, "gateway cut off requests still running at shutdown", "grace", shutdownGrace, "err", err)
		_ = srv.Close() // its only error is the listener's, already closed by Shutdown
	}
	return nil
}

func (g *Gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", g.healthz)
	mux.HandleFunc("GET /readyz", g.readyz)

	g.handle(mux, "POST /v1/models", g.createModel)
	g.handle(mux, "GET /v1/models", g.listModels)
	g.handle(mux, "GET /v1/models/{model}", g.getModel)
	g.handle(mux, "DELETE /v1/models/{model}", g.deleteModel)
	g.handle(mux, "POST /v1/models/{model}/move", g.postMove)

	g.handle(mux, "POST /v1/models/{model}/tables/{table}/rows", g.postRows)
	g.handle(mux, "POST /v1/models/{model}/sql", g.postSQL)
	g.handle(mux, "POST /v1/models/{model}/calls/{function}", g.postCall)
	g.handle(mux, "GET /v1/models/{model}/calls/{call}", g.getCall)
	g.handle(mux, "DELETE /v1/models/{model}/calls/{call}", g.deleteCall)
	g.handle(mux, "GET /v1/workers", g.listWorkers)
	g.handle(mux, "GET /v1/models/{model}/functions", g.listFunctions)
	g.handle(mux, "PUT /v1/models/{model}/functions/{name}", g.putFunction)
	g.handle(mux, "GET /v1/models/{model}/functions/{name}", g.getFunction)
	g.handle(mux, "DELETE /v1/models/{model}/functions/{name}", g.deleteFunction)
	g.handle(mux, "GET /v1/models/{model}/requests/{request}", g.getRequest)
	g.handle(mux, "GET /v1/models/{model}/events", g.getEvents)
	g.handle(mux, "POST /v1/models/{model}/query", g.postQuery)
	g.handle(mux, "GET /v1/models/{model}/query", g.postQuery)

	g.handle(mux, "GET /v1/models/{model}/snapshots", g.listSnapshots)
	g.handle(mux, "GET /v1/models/{model}/snapshots/{version}/{file}", g.getSnapshotFile)
	g.handle(mux, "POST /v1/models/{model}/snapshots/{version}/pins", g.postPin)
	g.handle(mux, "PUT /v1/models/{model}/snapshots/{version}/pins/{pin}", g.putPin)
	g.handle(mux, "DELETE /v1/models/{model}/snapshots/{version}/pins/{pin}", g.deletePin)
	return routeErrors(mux)
}

// healthz answers while the process lives.
func (g *Gateway) healthz(w http.ResponseWriter, _ *http.Request) {
	writeText(w, http.StatusOK, "ok")
}

// readyz answers 200 once the gateway is connected to NATS and the rest of
// the process says it is ready.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	if !g.deps.NC.IsConnected() {
		g.writeError(w, r, apierr.Errorf(apierr.Unavailable, "not connected to NATS (%s)", g.deps.NC.Status()))
		return
	}
	if g.deps.Ready != nil {
		if err := g.deps.Ready(); err != nil {
			g.writeError(w, r, apierr.New(apierr.Unavailable, err.Error()))
			return
		}
	}
	writeText(w, http.StatusOK, "ok")
}

// logRequests logs every request at Debug once it is answered.
func (g *Gateway) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		g.log.LogAttrs(r.Context(), slog.LevelDebug, "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(start)))
	})
}

// statusRecorder remembers the status a handler answered with.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(status int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = status, true
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
