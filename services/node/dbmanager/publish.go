package dbmanager

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// snapshotter publishes staged states one at a time, off the writer's path:
// Parquet, checksums and uploads do not hold up mutations.
type snapshotter struct {
	p       publication
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

// publication is what the snapshotter needs of its manager, and nothing
// more: the model and epoch it publishes under, where versions go, how it
// announces them, and the node's budget it publishes within.
type publication struct {
	model string
	epoch uint64
	names subject.Names
	blobs Blobs
	// models is tt_models: versions are reserved and committed there.
	models jetstream.KeyValue
	// pins is tt_pins (nil: collect without looking); js purges TT_MUT.
	pins jetstream.KeyValue
	js   jetstream.JetStream
	// fence returns nil while the manager's lease is still held.
	fence        func(context.Context) error
	publishEvent func(context.Context, *nats.Msg) error
	budget       *Budget
	log          *slog.Logger
	// Test hooks: see Config.
	beforeExport func(appliedSeq uint64)
	beforeCommit func(version uint64)
}

func newSnapshotter(p publication, published uint64) *snapshotter {
	return &snapshotter{p: p, published: published}
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
		if eerr := st.end(noInterrupt(ctx)); eerr != nil && err == nil {
			err = nodeError{fmt.Errorf("end export: %w", eerr)}
		}
		os.Remove(st.path)
		st.budget.published()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.running = false
		if err == nil {
			s.published = max(s.published, st.appliedSeq)
		}
		if errors.Is(err, catalog.ErrStale) {
			s.lost = leaseLost(s.p.model, s.p.epoch, err)
			s.p.log.WarnContext(ctx, "a newer holder has the model: giving up", "applied_seq", st.appliedSeq, "err", err)
			return
		}
		if err != nil {
			if st.tables == nil {
				s.pendingAll = true
			} else {
				s.pending = st.tables
			}
			if ctx.Err() == nil {
				s.p.log.WarnContext(ctx, "publish snapshot", "applied_seq", st.appliedSeq, "err", err)
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
	p := s.p
	model := p.model
	spec, _, err := catalog.GetModel(ctx, p.models, model)
	if err != nil {
		return fmt.Errorf("read catalog: %w", err)
	}
	if st.appliedSeq <= spec.GetAppliedSeq() {
		// Nothing newer than the published version; but the publication
		// that made it may have failed to announce it (its message id
		// keeps a second announcement single).
		return s.announce(ctx, spec.GetVersion())
	}
	if err := p.fence(ctx); err != nil {
		return err
	}
	version := s.reserved
	if version == 0 {
		if version, err = catalog.ReserveVersion(ctx, p.models, model, p.epoch); err != nil {
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
		Model: model, Version: version, AppliedSeq: st.appliedSeq, LeaseEpoch: p.epoch,
		CreatedAt: time.Now().UTC().Format(time.RFC3339Nano),
	}
	if p.beforeExport != nil {
		p.beforeExport(st.appliedSeq)
	}
	if err := p.budget.startWork(ctx); err != nil {
		return err
	}
	man.Tables, err = s.writeTables(ctx, st, version, prev)
	p.budget.endWork()
	if err != nil {
		return err
	}
	man.Duckdb, err = fileRef(st.path, blob.DuckDBFile)
	if err != nil {
		return err
	}
	if err := p.blobs.PutFile(ctx, blob.Key(model, version, blob.DuckDBFile), st.path); err != nil {
		return err
	}
	manifest, err := wire.Marshal(man)
	if err != nil {
		return err
	}
	if _, err := p.blobs.Put(ctx, blob.Key(model, version, blob.ManifestFile), bytes.NewReader(manifest)); err != nil {
		return err
	}
	if p.beforeCommit != nil {
		p.beforeCommit(version)
	}
	spec, err = catalog.CommitVersion(ctx, p.models, model, p.epoch, version, st.appliedSeq)
	if err != nil {
		return fmt.Errorf("commit version %d: %w", version, err)
	}
	s.reserved = 0
	if err := s.publishEvent(ctx, version, manifest); err != nil {
		return err
	}
	p.log.InfoContext(ctx, "published snapshot", "version", version, "applied_seq", st.appliedSeq)
	// The version is out: failing to collect old ones is no reason to
	// publish it again, only to try collecting next time.
	if err := s.collect(ctx, spec); err != nil {
		p.log.WarnContext(ctx, "collect old versions", "err", err)
	}
	return nil
}

// announce publishes the snapshot event of a published version again.
func (s *snapshotter) announce(ctx context.Context, version uint64) error {
	if version == 0 {
		return nil
	}
	manifest, err := s.p.blobs.Get(ctx, blob.Key(s.p.model, version, blob.ManifestFile))
	if err != nil {
		return fmt.Errorf("read manifest of version %d: %w", version, err)
	}
	return s.publishEvent(ctx, version, manifest)
}

func (s *snapshotter) publishEvent(ctx context.Context, version uint64, manifest []byte) error {
	msg := nats.NewMsg(s.p.names.Evt(s.p.model, subject.EventSnapshot))
	msg.Data = manifest
	msg.Header.Set(subject.HeaderMsgID, subject.SnapshotMsgID(s.p.model, version))
	if err := s.p.publishEvent(ctx, msg); err != nil {
		return fmt.Errorf("announce version %d: %w", version, err)
	}
	return nil
}

// manifest reads the manifest of one of the model's versions.
func (s *snapshotter) manifest(ctx context.Context, version uint64) (*teatreev1.Manifest, error) {
	b, err := s.p.blobs.Get(ctx, blob.Key(s.p.model, version, blob.ManifestFile))
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
