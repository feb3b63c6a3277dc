// Package dbmanager runs one model's db-manager: the only read-write DuckDB
// connection of the model. It applies the model's mutations in stream order
// in group-committed transactions that also record the applied sequence and
// each request's outcome, emits outcome events for the notifier, and
// publishes snapshot versions.
package dbmanager

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/jsbatch"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Blobs is the part of the blob store a db-manager uses.
type Blobs interface {
	Put(ctx context.Context, key string, r io.Reader) (int64, error)
	PutFile(ctx context.Context, key, src string) error
	Get(ctx context.Context, key string) ([]byte, error)
	Open(ctx context.Context, key string) (blob.Object, error)
	Link(ctx context.Context, from, to string) error
	List(ctx context.Context, prefix string) ([]string, error)
	DeleteAll(ctx context.Context, prefix string) error
}

// Config configures one model's db-manager.
type Config struct {
	Model string
	Spec  *teatreev1.ModelSpec
	// Epoch is the lease epoch this manager runs under, on the node Node.
	Epoch uint64
	Node  string
	// Dir holds the model's read-write file and scratch files on this node.
	Dir   string
	Names subject.Names
	// MaxBatchMessages and MaxBatchBytes bound one group commit.
	MaxBatchMessages int
	MaxBatchBytes    int
	// RecentRequests is how many request outcomes the model file keeps for
	// deduplication beyond JetStream's window.
	RecentRequests int
	// MemoryLimit and Threads bound the DuckDB instance ("" and 0: DuckDB's).
	MemoryLimit string
	Threads     int
	// IdleTimeout ends Run with ErrIdle once no mutation has come for this
	// long and every change is in a published version (0: never).
	IdleTimeout time.Duration
	// Close carries requests to close the model before IdleTimeout, when
	// its node needs the slot: Run answers on the given channel whether
	// the model is settled, and if so ends with ErrIdle (nil: never asked).
	Close <-chan chan<- bool
	// Drain, once closed, asks Run to hand the model over (a move): it
	// applies no further mutation, publishes a version of everything it
	// applied, and then ends with ErrIdle. The mutations it left wait in
	// TT_MUT for the next holder (nil: never asked).
	Drain <-chan struct{}
	// Activity, if set, is called after every committed batch: the node
	// closes its least recently used models first.
	Activity func()
	// Budget is shared by the node's db-managers: models working and
	// versions published at once (nil: no bound).
	Budget *Budget
	// Events, if set, writes the model's events to TT_EVT together with
	// the other models' of the node: one fsync for all that come at once.
	Events *jsbatch.Coalescer
	// Started, if set, is called once Run has taken the model over and
	// opened its file, right before it applies mutations.
	Started func()

	// beforeCommit, set by tests only, runs between writing a version's
	// files and committing it in the catalog.
	beforeCommit func(version uint64)
	// beforeExport, set by tests only, runs between staging a state and
	// writing its Parquet files, while the writer goes on.
	beforeExport func(appliedSeq uint64)
	// announceFault, set by tests only, fails the announcement of a
	// batch's outcomes when it returns an error: a crash between a commit
	// and its event.
	announceFault func() error
}

// ErrIdle ends Run when the model has been idle for IdleTimeout: its file
// is closed and everything it applied is published, so the caller can give
// up the lease; the next mutation places the model again.
var ErrIdle = errors.New("model idle")

// Defaults of Config.
const (
	DefaultMaxBatchMessages = 1000
	DefaultMaxBatchBytes    = 64 << 20
	DefaultRecentRequests   = 100_000
	DefaultSnapshotInterval = time.Second
	DefaultSnapshotEvery    = 10_000
	DefaultKeep             = 3
)

func (c *Config) setDefaults() {
	if c.MaxBatchMessages <= 0 {
		c.MaxBatchMessages = DefaultMaxBatchMessages
	}
	if c.MaxBatchBytes <= 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.RecentRequests <= 0 {
		c.RecentRequests = DefaultRecentRequests
	}
}

// Deps are the services a db-manager talks to.
type Deps struct {
	JS jetstream.JetStream
	// Models is the tt_models bucket: model specs and their newest version.
	Models jetstream.KeyValue
	Blobs  Blobs
	// Fence returns nil while this manager's lease is still held. Checked
	// before anything a reader would trust is published.
	Fence func(ctx context.Context) error
	// Pins is tt_pins: versions readers hold are not collected. Nil
	// collects without looking.
	Pins jetstream.KeyValue
	// Functions is tt_functions: the definitions call mutations run. Nil
	// fails every call not_found.
	Functions jetstream.KeyValue
	Log       *slog.Logger
}

// Manager is one model's db-manager.
type Manager struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	snap *snapshotter
	// rejected are the sequences a dispatcher rejected as unavailable, as
	// the catalog had them at takeover: they are not applied.
	rejected map[uint64]bool
}

// New returns a manager; Run starts it.
func New(cfg Config, deps Deps) *Manager {
	cfg.setDefaults()
	log := deps.Log.With("model", cfg.Model, "epoch", cfg.Epoch)
	m := &Manager{cfg: cfg, deps: deps, log: log}
	m.snap = newSnapshotter(publication{
		model: cfg.Model, epoch: cfg.Epoch, names: cfg.Names, blobs: deps.Blobs, models: deps.Models, pins: deps.Pins, js: deps.JS,
		fence: deps.Fence, publishEvent: m.publishEvent, budget: cfg.Budget, log: log,
		beforeExport: cfg.beforeExport, beforeCommit: cfg.beforeCommit,
	}, cfg.Spec.GetAppliedSeq())
	return m
}

// requestTimeout bounds the statements of one request:
// spec.limits.request_timeout_ms, or the catalog's default when unset.
func (m *Manager) requestTimeout() time.Duration {
	ms := m.cfg.Spec.GetLimits().GetRequestTimeoutMs()
	if ms == 0 {
		ms = catalog.DefaultRequestTimeoutMs
	}
	return time.Duration(ms) * time.Millisecond
}

func (m *Manager) dbPath() string   { return filepath.Join(m.cfg.Dir, "model.duckdb") }
func (m *Manager) spoolDir() string { return filepath.Join(m.cfg.Dir, "spool") }

// stagingDir holds snapshot copies on their way to the blob store.
func (m *Manager) stagingDir() string { return filepath.Join(m.cfg.Dir, "staging") }

// Run applies the model's mutations until ctx ends or the node fails. A
// returned error is the node's: the caller retries Run, which resumes from
// the applied sequence recorded in the file.
func (m *Manager) Run(ctx context.Context) error {
	// DuckDB calls are never interrupted by ctx (see noInterrupt); Run
	// stops between batches instead.
	dctx := noInterrupt(ctx)
	// Fence out every earlier holder before anything is applied, and
	// start from the catalog as it is then.
	if err := m.takeOver(ctx); err != nil {
		return err
	}
	st, err := m.openOrRestore(dctx)
	if err != nil {
		return err
	}
	defer st.close()
	defer m.snap.wait()

	file, err := st.state(dctx)
	if err != nil {
		return err
	}
	applied, eventsSeq := file.applied, file.events
	if file.epoch != m.cfg.Epoch {
		// Outcomes an earlier epoch announced for requests after this
		// epoch's start may have been dropped by the notifier, which no
		// longer trusts them: announce them again under this epoch (the
		// notifier publishes a request's notification once).
		eventsSeq = min(eventsSeq, m.epochStart())
	}
	w := &writer{m: m, st: st, applied: applied, eventsSeq: eventsSeq}
	if w.notified, err = m.newNotified(dctx, file.epoch); err != nil {
		return err
	}
	if applied > m.cfg.Spec.GetAppliedSeq() {
		// The file is ahead of the newest version, after a crash or a lost
		// publication: publish it without waiting for another mutation.
		w.changed, w.allTables = 1, true
	}
	if err := w.replayOutcomes(dctx); err != nil {
		return err
	}
	if err := w.countRequests(dctx); err != nil {
		return err
	}
	start := max(applied, m.cfg.Spec.GetCreatedSeq()) + 1
	cons, err := m.deps.JS.OrderedConsumer(ctx, m.cfg.Names.MutStream(), jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{m.cfg.Names.MutModel(m.cfg.Model)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return fmt.Errorf("consume %s from %d: %w", m.cfg.Model, start, err)
	}
	iter, err := cons.Messages(jetstream.PullMaxMessages(m.cfg.MaxBatchMessages))
	if err != nil {
		return fmt.Errorf("consume %s: %w", m.cfg.Model, err)
	}
	msgs := make(chan jetstream.Msg, m.cfg.MaxBatchMessages)
	pumpErr := make(chan error, 1)
	go func() {
		for {
			msg, err := iter.Next()
			if err != nil {
				pumpErr <- err
				close(msgs)
				return
			}
			msgs <- msg
		}
	}()
	defer func() {
		iter.Stop()
		for range msgs { // let the pump see the stop
		}
	}()
	// A reader that needs a newer version (min_seq) asks for one now.
	now := make(chan struct{}, 1)
	sub, err := m.deps.JS.Conn().Subscribe(m.cfg.Names.SnapshotNow(m.cfg.Model), func(*nats.Msg) {
		select {
		case now <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to snapshot requests: %w", err)
	}
	defer sub.Unsubscribe()
	if m.cfg.Started != nil {
		m.cfg.Started()
	}
	m.log.InfoContext(ctx, "db-manager started", "applied_seq", applied, "from_seq", start)
	return w.loop(ctx, msgs, pumpErr, now)
}

// noInterrupt is the context for DuckDB calls: a DuckDB call cancelled at
// the wrong moment can leak its database instance, and the next open of the
// same file in this process (the restart of this db-manager) then spins
// forever in DuckDB's instance cache, holding the cache's lock, which blocks
// every DuckDB open of the process. Seen under load when stopping Run.
// The one exception is a request's own statements (underDeadline):
// they are interrupted at the request's deadline or when Run ends, on a
// connection that stays open, and only their transaction is rolled back.
func noInterrupt(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }

// openOrRestore opens the local read-write file, first restoring the newest
// snapshot when the file is missing or older than it: a model can move to
// any node without shared disks.
func (m *Manager) openOrRestore(ctx context.Context) (*store, error) {
	if err := os.MkdirAll(m.cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create model dir: %w", err)
	}
	if err := m.sweep(); err != nil {
		return nil, err
	}
	var localSeq uint64
	if _, err := os.Stat(m.dbPath()); err == nil {
		st, err := m.open(ctx)
		if err != nil {
			return nil, err
		}
		file, err := st.state(ctx)
		if err != nil {
			st.close()
			return nil, err
		}
		localSeq = file.applied
		if m.cfg.Spec.GetAppliedSeq() <= localSeq && m.trusts(file.epoch) {
			return st, nil
		}
		st.close()
		if !m.trusts(file.epoch) {
			// Written by a holder that another one took over from: what
			// it applied after the newest version may disagree with what
			// the holders since applied and announced. Start from the
			// newest version (or from nothing) instead.
			m.log.InfoContext(ctx, "discard a local file of an earlier epoch", "file_epoch", file.epoch, "local_seq", localSeq)
			if err := removeDB(m.dbPath()); err != nil {
				return nil, err
			}
		}
	}
	if m.cfg.Spec.GetVersion() > 0 {
		if err := m.restore(ctx, m.cfg.Spec.GetVersion()); err != nil {
			return nil, err
		}
		m.log.InfoContext(ctx, "restored snapshot", "version", m.cfg.Spec.GetVersion(), "applied_seq", m.cfg.Spec.GetAppliedSeq(), "local_seq", localSeq)
	}
	return m.open(ctx)
}

// trusts reports whether a local file last committed under fileEpoch may
// be used as it is: it was this epoch's (a restart), the epoch right before
// this one's (nobody else wrote since), or from before epochs were recorded.
func (m *Manager) trusts(fileEpoch uint64) bool {
	if fileEpoch == 0 || fileEpoch == m.cfg.Epoch {
		return true
	}
	epochs := m.cfg.Spec.GetEpochs()
	for i, e := range epochs {
		if e.GetEpoch() == m.cfg.Epoch {
			return i > 0 && epochs[i-1].GetEpoch() == fileEpoch
		}
	}
	return false
}

// hasPredecessor reports whether another epoch held the model before this
// one.
func (m *Manager) hasPredecessor() bool {
	epochs := m.cfg.Spec.GetEpochs()
	return len(epochs) > 1 || len(epochs) == 1 && epochs[0].GetEpoch() != m.cfg.Epoch
}

// epochStart is the catalog's applied_seq when this epoch took the model
// over: outcomes of earlier epochs are trusted only up to it.
func (m *Manager) epochStart() uint64 {
	for _, e := range m.cfg.Spec.GetEpochs() {
		if e.GetEpoch() == m.cfg.Epoch {
			return e.GetStartSeq()
		}
	}
	return m.cfg.Spec.GetAppliedSeq()
}

// removeDB deletes a model file and its write-ahead log.
func removeDB(path string) error {
	for _, p := range []string{path, path + ".wal"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
	}
	return nil
}

// sweep removes what a crashed run left in the model's scratch folders:
// staged snapshot copies and spooled request bodies. Only a running manager
// uses them, and the model has one manager, so at open they are garbage.
func (m *Manager) sweep() error {
	// A restore cut short leaves its temporary file (blob.WriteFile's).
	temps, err := filepath.Glob(filepath.Join(m.cfg.Dir, ".put-*"))
	if err != nil {
		return err
	}
	for _, p := range append(temps, m.stagingDir(), m.spoolDir()) {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("remove leftovers of an earlier run: %w", err)
		}
	}
	return nil
}

func (m *Manager) open(ctx context.Context) (*store, error) {
	return openStore(ctx, m.dbPath(), storeDirs{spool: m.spoolDir(), staging: m.stagingDir()}, m.cfg.MemoryLimit, m.cfg.Threads)
}

func (m *Manager) restore(ctx context.Context, version uint64) error {
	src, err := m.deps.Blobs.Open(ctx, blob.Key(m.cfg.Model, version, blob.DuckDBFile))
	if err != nil {
		return fmt.Errorf("restore version %d: %w", version, err)
	}
	defer src.Close()
	// The old file's log goes first: the old file without it is still a
	// consistent, older state, which the next start restores over again.
	if err := os.Remove(m.dbPath() + ".wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("restore version %d: %w", version, err)
	}
	if _, err := blob.WriteFile(ctx, m.dbPath(), src); err != nil {
		return fmt.Errorf("restore version %d: %w", version, err)
	}
	return nil
}

// publishEvent writes an event to TT_EVT and waits until JetStream has it.
func (m *Manager) publishEvent(ctx context.Context, msg *nats.Msg) error {
	if m.cfg.Events != nil {
		return m.cfg.Events.Publish(ctx, []*nats.Msg{msg})
	}
	_, err := m.deps.JS.PublishMsg(ctx, msg)
	return err
}

// bodyFromRef reads a body uploaded to the blob store ahead of its message.
func (m *Manager) bodyFromRef(ctx context.Context, ref string) ([]byte, error) {
	b, err := m.deps.Blobs.Get(ctx, ref)
	if errors.Is(err, blob.ErrNotFound) {
		return nil, apierr.Errorf(apierr.NotFound, "%s %q: no such upload", subject.HeaderBodyRef, ref)
	}
	if err != nil {
		return nil, nodeError{fmt.Errorf("read body %s: %w", ref, err)}
	}
	return b, nil
}
