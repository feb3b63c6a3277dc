package dbmanager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// staged is a consistent copy of the model file, taken on the writer after
// a checkpoint, waiting to be published as a version.
type staged struct {
	path       string
	appliedSeq uint64
	// tables changed since the previous version; nil when all may have.
	tables map[string]bool
}

// snapshotter publishes staged copies one at a time, off the writer's path:
// Parquet, checksums and uploads do not hold up mutations.
type snapshotter struct {
	m       *Manager
	mu      sync.Mutex
	running bool
	// pending carries tables changed by a staged copy whose publication
	// failed, so that the next version still writes their Parquet.
	pending    map[string]bool
	pendingAll bool
	// published is the applied sequence of the newest version known out.
	published uint64
	// reserved is a version number reserved in the catalog whose
	// publication failed: the next attempt writes it again (it was never
	// visible), rather than leaving a gap.
	reserved uint64
	// lost is set once the catalog refused a publication for a newer
	// holder: Run ends with it.
	lost error
	// purged is the sequence TT_MUT is known purged up to for the model.
	purged uint64
	wg     sync.WaitGroup
}

func newSnapshotter(m *Manager, published uint64) *snapshotter {
	return &snapshotter{m: m, published: published}
}

// publishedSeq is the applied sequence of the newest version known out.
func (s *snapshotter) publishedSeq() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.published
}

// unpublished reports whether a staged copy failed to publish: its
// changes still wait for a version.
func (s *snapshotter) unpublished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pendingAll || s.pending != nil
}

func (s *snapshotter) busy() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

func (s *snapshotter) wait() { s.wg.Wait() }

// lostErr is the error a refused publication ended with, once a newer
// holder has the model.
func (s *snapshotter) lostErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lost
}

// maybeSnapshot stages a copy when the model's policy says so and returns
// how long to wait before asking again.
func (w *writer) maybeSnapshot(ctx context.Context) (time.Duration, error) {
	if err := w.m.snap.lostErr(); err != nil {
		return 0, err
	}
	if w.changed == 0 && !w.m.snap.unpublished() {
		if w.m.snap.busy() {
			// Look again once the publication in flight is done: if it
			// fails, its changes wait for a retry.
			return 50 * time.Millisecond, nil
		}
		w.now = false
		return 0, nil
	}
	pol := w.m.cfg.Spec.GetSnapshot()
	interval := time.Duration(pol.GetIntervalMs()) * time.Millisecond
	if interval <= 0 {
		interval = DefaultSnapshotInterval
	}
	every := int(pol.GetEveryMutations())
	if every <= 0 {
		every = DefaultSnapshotEvery
	}
	since := time.Since(w.lastSnap)
	if !w.now && w.changed < every && since < interval {
		return interval - since, nil
	}
	if w.m.snap.busy() {
		return min(interval/4, 50*time.Millisecond), nil
	}
	st, err := w.stage(noInterrupt(ctx))
	if err != nil {
		return 0, err
	}
	w.changed, w.tables, w.allTables, w.lastSnap, w.now = 0, nil, false, time.Now(), false
	w.m.snap.start(ctx, st)
	// Look again after an interval: a publication that failed is retried.
	return interval, nil
}

// stage checkpoints the file and copies it. The writer is paused while it
// copies, so the copy is exactly the state at applied.
func (w *writer) stage(ctx context.Context) (*staged, error) {
	if _, err := w.st.conn.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return nil, nodeError{fmt.Errorf("checkpoint: %w", err)}
	}
	dir := filepath.Join(w.m.cfg.Dir, "staging")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nodeError{err}
	}
	dst := filepath.Join(dir, strconv.FormatUint(w.applied, 10)+".duckdb")
	if err := copyFile(dst, w.st.path); err != nil {
		return nil, nodeError{fmt.Errorf("stage snapshot: %w", err)}
	}
	st := &staged{path: dst, appliedSeq: w.applied}
	if !w.allTables {
		st.tables = w.tables
		if st.tables == nil {
			st.tables = map[string]bool{}
		}
	}
	return st, nil
}

func (s *snapshotter) start(ctx context.Context, st *staged) {
	s.mu.Lock()
	s.running = true
	if st.tables != nil && !s.pendingAll {
		for t := range s.pending {
			st.tables[t] = true
		}
	} else {
		st.tables = nil
	}
	s.pending, s.pendingAll = nil, false
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := s.publish(ctx, st)
		os.Remove(st.path)
		s.mu.Lock()
		defer s.mu.Unlock()
		s.running = false
		if err == nil {
			s.published = max(s.published, st.appliedSeq)
		}
		if errors.Is(err, catalog.ErrStale) {
			s.lost = s.m.lostError(err)
			s.m.log.WarnContext(ctx, "a newer holder has the model: giving up", "applied_seq", st.appliedSeq, "err", err)
			return
		}
		if err != nil {
			if st.tables == nil {
				s.pendingAll = true
			} else {
				s.pending = st.tables
			}
			if ctx.Err() == nil {
				s.m.log.WarnContext(ctx, "publish snapshot", "applied_seq", st.appliedSeq, "err", err)
			}
		}
	}()
}

// publish writes a staged copy as the next version: Parquet for the tables
// that changed (links to the previous version's for the others), the
// DuckDB file, then the manifest, which completes the version's folder.
// The version number is reserved in the catalog first, so that no other
// holder ever writes that folder; committing it in the catalog, by a
// compare-and-set that fails for a holder that lost the model, is what
// makes it visible.
func (s *snapshotter) publish(ctx context.Context, st *staged) error {
	m := s.m
	model := m.cfg.Model
	spec, _, err := catalog.GetModel(ctx, m.deps.Models, model)
	if err != nil {
		return fmt.Errorf("read catalog: %w", err)
	}
	if st.appliedSeq <= spec.GetAppliedSeq() {
		// Nothing newer than the published version; but the publication
		// that made it may have failed to announce it (its message id
		// keeps a second announcement single).
		return s.announce(ctx, spec.GetVersion())
	}
	if err := m.deps.Fence(ctx); err != nil {
		return err
	}
	version := s.reserved
	if version == 0 {
		if version, err = catalog.ReserveVersion(ctx, m.deps.Models, model, m.cfg.Epoch); err != nil {
			return err
		}
		s.reserved = version
	}
	prev := &teatreev1.Manifest{}
	if spec.GetVersion() > 0 {
		if prev, err = s.manifest(ctx, spec.GetVersion()); err != nil {
			return err
		}
	}
	man := &teatreev1.Manifest{
		Model: model, Version: version, AppliedSeq: st.appliedSeq, LeaseEpoch: m.cfg.Epoch,
		CreatedAt: time.Now().UTC().Format(time.RFC3339Nano),
	}
	man.Tables, err = s.writeTables(ctx, st, version, prev)
	if err != nil {
		return err
	}
	man.Duckdb, err = fileRef(st.path, blob.DuckDBFile)
	if err != nil {
		return err
	}
	if err := m.deps.Blobs.PutFile(ctx, blob.Key(model, version, blob.DuckDBFile), st.path); err != nil {
		return err
	}
	manifest, err := wire.Marshal(man)
	if err != nil {
		return err
	}
	if _, err := m.deps.Blobs.Put(ctx, blob.Key(model, version, blob.ManifestFile), bytes.NewReader(manifest)); err != nil {
		return err
	}
	if m.cfg.beforeCommit != nil {
		m.cfg.beforeCommit(version)
	}
	spec, err = catalog.CommitVersion(ctx, m.deps.Models, model, m.cfg.Epoch, version, st.appliedSeq)
	if err != nil {
		return fmt.Errorf("commit version %d: %w", version, err)
	}
	s.reserved = 0
	if err := s.publishEvent(ctx, version, manifest); err != nil {
		return err
	}
	m.log.InfoContext(ctx, "published snapshot", "version", version, "applied_seq", st.appliedSeq)
	// The version is out: failing to collect old ones is no reason to
	// publish it again, only to try collecting next time.
	if err := s.collect(ctx, spec); err != nil {
		m.log.WarnContext(ctx, "collect old versions", "err", err)
	}
	return nil
}

// announce publishes the snapshot event of a published version again.
func (s *snapshotter) announce(ctx context.Context, version uint64) error {
	if version == 0 {
		return nil
	}
	manifest, err := s.m.deps.Blobs.Get(ctx, blob.Key(s.m.cfg.Model, version, blob.ManifestFile))
	if err != nil {
		return fmt.Errorf("read manifest of version %d: %w", version, err)
	}
	return s.publishEvent(ctx, version, manifest)
}

func (s *snapshotter) publishEvent(ctx context.Context, version uint64, manifest []byte) error {
	msg := nats.NewMsg(s.m.cfg.Names.Evt(s.m.cfg.Model, subject.EventSnapshot))
	msg.Data = manifest
	msg.Header.Set(subject.HeaderMsgID, subject.SnapshotMsgID(s.m.cfg.Model, version))
	if _, err := s.m.deps.JS.PublishMsg(ctx, msg); err != nil {
		return fmt.Errorf("announce version %d: %w", version, err)
	}
	return nil
}

// writeTables writes or links each user table's Parquet file and counts
// its rows, reading the staged copy through its own read-only DuckDB.
func (s *snapshotter) writeTables(ctx context.Context, st *staged, version uint64, prev *teatreev1.Manifest) ([]*teatreev1.TableManifest, error) {
	dctx := noInterrupt(ctx) // the staged copy is a DuckDB file too
	m := s.m
	connector, err := duckdb.NewConnector(st.path+"?access_mode=read_only", nil)
	if err != nil {
		return nil, fmt.Errorf("open staged copy: %w", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	names, err := userTables(dctx, db)
	if err != nil {
		return nil, err
	}
	prevTables := map[string]*teatreev1.TableManifest{}
	for _, t := range prev.GetTables() {
		prevTables[t.GetName()] = t
	}
	var out []*teatreev1.TableManifest
	for _, name := range names {
		tm := &teatreev1.TableManifest{Name: name}
		if err := db.QueryRowContext(dctx, "SELECT count(*) FROM main."+quoteIdent(name)).Scan(&tm.Rows); err != nil {
			return nil, fmt.Errorf("count %s: %w", name, err)
		}
		out = append(out, tm)
		if subject.ValidateTable(name) != nil {
			// A name made by SQL that is no safe file name gets no Parquet.
			continue
		}
		file := blob.ParquetFile(name)
		key := blob.Key(m.cfg.Model, version, file)
		if p, ok := prevTables[name]; ok && p.GetParquet() != nil && st.tables != nil && !st.tables[name] {
			if err := m.deps.Blobs.Link(ctx, blob.Key(m.cfg.Model, prev.GetVersion(), file), key); err != nil {
				return nil, err
			}
			tm.Parquet = p.GetParquet()
			continue
		}
		local := st.path + "." + file
		if _, err := db.ExecContext(dctx, "COPY main."+quoteIdent(name)+" TO "+quoteString(local)+" (FORMAT parquet)"); err != nil {
			return nil, fmt.Errorf("write parquet of %s: %w", name, err)
		}
		if tm.Parquet, err = fileRef(local, file); err != nil {
			return nil, err
		}
		if err := m.deps.Blobs.PutFile(ctx, key, local); err != nil {
			os.Remove(local)
			return nil, err
		}
	}
	return out, nil
}

// userTables lists the model's own tables, without teatree's bookkeeping.
func userTables(ctx context.Context, db *sql.DB) ([]string, error) {
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM duckdb_tables()
		WHERE database_name = current_database() AND schema_name = 'main' AND NOT internal
		AND NOT starts_with(table_name, ?) ORDER BY table_name`, subject.ReservedPrefix)
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

// collect deletes versions older than the newest keep, except those a
// reader has pinned, and the folders of abandoned versions. Then it purges
// the model's log up to the oldest version kept: a restore never needs
// what comes before. Pinned older versions serve readers, not replay, and
// do not hold the purge back.
func (s *snapshotter) collect(ctx context.Context, spec *teatreev1.ModelSpec) error {
	newest := spec.GetVersion()
	keep := uint64(spec.GetSnapshot().GetKeep())
	if keep == 0 {
		keep = DefaultKeep
	}
	dirs, err := s.m.deps.Blobs.List(ctx, blob.ModelPrefix(s.m.cfg.Model))
	if err != nil {
		return err
	}
	var errs []error
	var oldestKept uint64
	for _, d := range dirs {
		v, ok := blob.ParseVersionDir(d)
		switch {
		case !ok:
			continue
		case slices.Contains(spec.GetAbandonedVersions(), v):
			// Never visible; a stale holder may write it again, and the
			// next collection deletes it again.
			errs = append(errs, s.m.deps.Blobs.DeleteAll(ctx, blob.VersionPrefix(s.m.cfg.Model, v)))
			continue
		case v > newest:
			continue // reserved, not yet published
		case v+keep > newest:
			if catalog.VersionVisible(spec, v) && (oldestKept == 0 || v < oldestKept) {
				oldestKept = v
			}
			continue
		}
		if s.m.deps.Pins != nil {
			pinned, err := catalog.Pinned(ctx, s.m.deps.Pins, s.m.cfg.Model, v)
			if err != nil || pinned {
				errs = append(errs, err) // a reader has it: collect it later
				continue
			}
		}
		errs = append(errs, s.m.deps.Blobs.DeleteAll(ctx, blob.VersionPrefix(s.m.cfg.Model, v)))
	}
	if oldestKept > 0 {
		errs = append(errs, s.purgeTo(ctx, oldestKept))
	}
	return errors.Join(errs...)
}

// purgeTo purges the log up to the applied sequence of a kept version.
func (s *snapshotter) purgeTo(ctx context.Context, version uint64) error {
	man, err := s.manifest(ctx, version)
	if err != nil {
		return err
	}
	return s.purgeLog(ctx, man.GetAppliedSeq())
}

// manifest reads the manifest of one of the model's versions.
func (s *snapshotter) manifest(ctx context.Context, version uint64) (*teatreev1.Manifest, error) {
	b, err := s.m.deps.Blobs.Get(ctx, blob.Key(s.m.cfg.Model, version, blob.ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("read manifest of version %d: %w", version, err)
	}
	man := &teatreev1.Manifest{}
	if err := wire.Unmarshal(b, man); err != nil {
		return nil, fmt.Errorf("read manifest of version %d: %w", version, err)
	}
	return man, nil
}

func fileRef(path, name string) (*teatreev1.FileRef, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return nil, fmt.Errorf("checksum %s: %w", name, err)
	}
	return &teatreev1.FileRef{Path: name, Bytes: n, Sha256: hex.EncodeToString(h.Sum(nil))}, nil
}

// copyFile copies src to dst; between two files on Linux, io.Copy uses
// copy_file_range, so the bytes need not pass through Go. It does not sync:
// the writer waits while it copies, the copy is synced when it is published
// (blob.Dir.PutFile), and a copy a crash left half written is swept at open.
func copyFile(dst, src string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(dst)
	}
	return err
}
