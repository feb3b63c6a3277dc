// Package worker is the Go SDK of teatree's compute workers: a process
// that serves handlers under the contract's "Workers" protocol. It
// advertises itself in tt_compute, pulls jobs of its routes from TT_CALL
// while it has a free slot, gives each handler its input version in
// DuckDB, writes the result where the job says and reports on
// tt.evt.<model>.call.
package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Handler runs one attempt of a job. It returns the result, or an error;
// an *apierr.Error with invalid_argument fails the call at once, any other
// error is retried while attempts are left.
type Handler func(ctx context.Context, in *Input) (Output, error)

// Defaults of Config.
const (
	DefaultSlots = 4
	// DefaultAckWait is the contract's ack_wait of a route's consumer.
	DefaultAckWait = 30 * time.Second
	// DefaultHeartbeat is how often a worker puts its heartbeat; entries
	// of tt_compute expire 15 s after the last put.
	DefaultHeartbeat = 5 * time.Second
	// DefaultProgressInterval is the contract's "at most once a second".
	DefaultProgressInterval = time.Second
	// DefaultPollWait bounds one Fetch, during which it holds a slot.
	DefaultPollWait = time.Second
	// DefaultStopGrace is how long a stopping worker lets running calls
	// finish before it gives them back to the queue.
	DefaultStopGrace = 10 * time.Second
	// inProgressEvery is the contract's "+WPI at least every 10 s".
	inProgressEvery = 10 * time.Second
	// stopAbandon is how long a stopping worker waits for handlers told
	// to stop before it exits without them.
	stopAbandon = 5 * time.Second
)

// idRE is the contract's rule of a worker id.
var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// Config configures a worker.
type Config struct {
	Names subject.Names
	// ID names the worker in tt_compute and in its events (default
	// hostname-pid, cut to the id rule).
	ID           string
	Capabilities []string
	// Slots is how many jobs run at once.
	Slots    int
	Handlers map[string]Handler
	// AckWait is the ack_wait of the routes' consumers; only tests change
	// it from the contract's 30 s.
	AckWait time.Duration
	// Heartbeat, ProgressInterval, PollWait and StopGrace default to the
	// constants above.
	Heartbeat        time.Duration
	ProgressInterval time.Duration
	PollWait         time.Duration
	StopGrace        time.Duration
	// TempDir holds downloaded inputs and results on their way to an HTTP
	// URL (default the system's).
	TempDir string
}

// WithDefaults fills zero fields with their defaults.
func (c Config) WithDefaults() Config {
	if c.Names == (subject.Names{}) {
		c.Names = subject.Default()
	}
	if c.ID == "" {
		c.ID = defaultID()
	}
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ProgressInterval == 0 {
		c.ProgressInterval = DefaultProgressInterval
	}
	if c.PollWait == 0 {
		c.PollWait = DefaultPollWait
	}
	if c.StopGrace == 0 {
		c.StopGrace = DefaultStopGrace
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if !idRE.MatchString(c.ID) {
		errs = append(errs, fmt.Errorf("worker id %q: want 1 to 64 of A-Z, a-z, 0-9, _ and -", c.ID))
	}
	if len(c.Capabilities) == 0 {
		errs = append(errs, errors.New("a worker needs at least one capability"))
	}
	for _, capability := range c.Capabilities {
		if err := subject.ValidateCapability(capability); err != nil {
			errs = append(errs, err)
		}
	}
	if len(c.Handlers) == 0 {
		errs = append(errs, errors.New("a worker needs at least one handler"))
	}
	for name := range c.Handlers {
		if err := subject.ValidateCapability(name); err != nil {
			errs = append(errs, fmt.Errorf("handler %q: %w", name, err))
		}
	}
	if c.Slots < 1 {
		errs = append(errs, fmt.Errorf("slots %d: want at least 1", c.Slots))
	}
	if c.AckWait < time.Second {
		errs = append(errs, fmt.Errorf("ack wait %s: want at least 1s", c.AckWait))
	}
	return errors.Join(errs...)
}

// Deps are what a worker works with: a JetStream connection (its core
// connection receives cancels), the tt_compute bucket, and a logger.
type Deps struct {
	JS      jetstream.JetStream
	Compute jetstream.KeyValue
	Log     *slog.Logger
}

// Worker serves its handlers until Run's context ends.
type Worker struct {
	cfg     Config
	deps    Deps
	nc      *nats.Conn
	started time.Time
	slots   chan struct{}

	mu      sync.Mutex
	running map[string]struct{} // <model>.<call id>
}

// New checks cfg and returns a worker.
func New(cfg Config, deps Deps) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	return &Worker{cfg: cfg, deps: deps, nc: deps.JS.Conn(), slots: make(chan struct{}, cfg.Slots),
		running: map[string]struct{}{}}, nil
}

// ID is the worker's id.
func (w *Worker) ID() string { return w.cfg.ID }

// Routes are the routes the worker pulls jobs of.
func (w *Worker) Routes() []string { return function.Routes(w.handlerNames(), w.cfg.Capabilities) }

func (w *Worker) handlerNames() []string {
	names := make([]string, 0, len(w.cfg.Handlers))
	for n := range w.cfg.Handlers {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Run binds the routes' consumers, then calls ready (when not nil),
// advertises the worker and runs jobs until ctx ends. Then it stops
// pulling, lets running jobs finish for up to StopGrace, gives the others
// back to the queue, and deletes its heartbeat.
func (w *Worker) Run(ctx context.Context, ready func()) error {
	w.started = time.Now().UTC()
	var consumers []jetstream.Consumer
	for _, route := range w.Routes() {
		c, err := w.bind(ctx, route)
		if w.refused(err, route) {
			// Under an access policy a worker may bind only the routes
			// of registered functions its work grant covers.
			w.deps.Log.WarnContext(ctx, "route skipped: the NATS server refused its consumer", "route", route, "err", w.nc.LastError())
			continue
		}
		if err != nil {
			return err
		}
		consumers = append(consumers, c)
	}
	if err := w.beat(ctx); err != nil {
		return err
	}
	// Jobs run under their own context, which outlives ctx by StopGrace.
	jobCtx, stopJobs := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stopJobs(nil)
	var jobs, pullers sync.WaitGroup
	for _, c := range consumers {
		pullers.Go(func() { w.pull(ctx, jobCtx, c, &jobs) })
	}
	beats := make(chan struct{})
	go func() {
		defer close(beats)
		w.heartbeat(ctx)
	}()
	w.deps.Log.InfoContext(ctx, "worker ready", "id", w.cfg.ID, "routes", w.Routes(), "slots", w.cfg.Slots)
	if ready != nil {
		ready()
	}
	<-ctx.Done()
	pullers.Wait()
	finished := make(chan struct{})
	go func() {
		jobs.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(w.cfg.StopGrace):
		stopJobs(errStopping)
		// A handler that does not heed its context is left behind: its
		// job, no longer kept in progress, returns after ack_wait.
		select {
		case <-finished:
		case <-time.After(stopAbandon):
			w.deps.Log.WarnContext(ctx, "stopped with handlers still running", "running", w.runningKeys())
		}
	}
	<-beats
	w.unadvertise()
	return nil
}

// bind creates or updates the durable consumer of route with exactly the
// contract's settings.
func (w *Worker) bind(ctx context.Context, route string) (jetstream.Consumer, error) {
	n := w.cfg.Names
	c, err := w.deps.JS.CreateOrUpdateConsumer(ctx, n.CallStream(), jetstream.ConsumerConfig{
		Durable:       calls.Consumer(route),
		FilterSubject: n.CallRoute(route),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		MaxDeliver:    -1,
	})
	if err != nil {
		return nil, fmt.Errorf("bind consumer of route %s: %w", route, err)
	}
	return c, nil
}

// refused reports whether err, a failed bind of route, is the server's
// refusal of the consumer's creation: the request then gets no answer and
// times out, and the connection's last error names its subject.
func (w *Worker) refused(err error, route string) bool {
	if err == nil || !(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)) {
		return false
	}
	last := w.nc.LastError()
	return errors.Is(last, nats.ErrPermissionViolation) &&
		strings.Contains(last.Error(), "."+w.cfg.Names.CallStream()+"."+calls.Consumer(route)+".")
}

// pull fetches one job at a time from c, each only once a slot is free,
// and runs it under jobCtx, until ctx ends.
func (w *Worker) pull(ctx, jobCtx context.Context, c jetstream.Consumer, jobs *sync.WaitGroup) {
	for {
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		got := false
		// Not cut short when ctx ends: a job the server sent to a fetch
		// the client gave up on would wait out ack_wait unseen.
		batch, err := c.Fetch(1, jetstream.FetchMaxWait(w.cfg.PollWait))
		if err == nil {
			for msg := range batch.Messages() {
				got = true
				jobs.Go(func() {
					defer func() { <-w.slots }()
					w.run(jobCtx, msg)
				})
			}
			err = batch.Error()
		}
		if !got {
			<-w.slots
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, nats.ErrTimeout) {
			w.deps.Log.WarnContext(ctx, "fetch a job", "err", err)
			// A server that is away answers at once: do not spin.
			select {
			case <-time.After(w.cfg.PollWait):
			case <-ctx.Done():
				return
			}
		}
	}
}

func (w *Worker) setRunning(key string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		w.running[key] = struct{}{}
	} else {
		delete(w.running, key)
	}
}

func (w *Worker) runningKeys() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	keys := make([]string, 0, len(w.running))
	for k := range w.running {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// defaultID is hostname-pid, kept to the worker-id rule.
func defaultID() string {
	host, _ := os.Hostname()
	id := []byte(fmt.Sprintf("%s-%d", host, os.Getpid()))
	for i, b := range id {
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			id[i] = '-'
		}
	}
	if len(id) > 64 {
		id = id[len(id)-64:]
	}
	return string(id)
}
