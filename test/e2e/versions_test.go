package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

// catalogEntry is the part of a model's tt_models value the version
// checks read.
type catalogEntry struct {
	Version   uint64   `json:"version"`
	Abandoned []uint64 `json:"abandoned_versions"`
}

// visible says whether readers may use version v: committed in the
// catalog and not abandoned by a holder that lost the model.
func (c catalogEntry) visible(v uint64) bool {
	return v <= c.Version && !slices.Contains(c.Abandoned, v)
}

func readCatalog(ctx context.Context, js jetstream.JetStream, model string) (catalogEntry, error) {
	var c catalogEntry
	kv, err := js.KeyValue(ctx, "tt_models")
	if err != nil {
		return c, err
	}
	e, err := kv.Get(ctx, model)
	if err != nil {
		return c, err
	}
	return c, json.Unmarshal(e.Value(), &c)
}

// fileStat identifies the content of a file cheaply.
type fileStat struct {
	size  int64
	mtime time.Time
	ino   uint64
}

func statFile(path string) (fileStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}, err
	}
	st := fileStat{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.ino = sys.Ino
	}
	return st, nil
}

// versionWatcher checks, while the test runs, that every version readers
// may use matches its manifest when first seen and never changes after:
// the overwrite of a stale holder is gone once the version is collected,
// so a check at the end alone could miss it.
type versionWatcher struct {
	js           jetstream.JetStream
	blobs, model string
	stop, done   chan struct{}

	mu       sync.Mutex
	seen     map[uint64]map[string]fileStat // version -> file -> stat at first sight
	problems []string
}

func watchVersions(t *testing.T, js jetstream.JetStream, blobs, model string) *versionWatcher {
	w := &versionWatcher{js: js, blobs: blobs, model: model, stop: make(chan struct{}), done: make(chan struct{}), seen: map[uint64]map[string]fileStat{}}
	go w.run()
	t.Cleanup(w.halt)
	return w
}

func (w *versionWatcher) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// finish stops the watcher and returns what it found wrong.
func (w *versionWatcher) finish() (versions int, problems []string) {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.seen), w.problems
}

func (w *versionWatcher) run() {
	defer close(w.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		w.pass()
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
	}
}

func (w *versionWatcher) problem(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, fmt.Sprintf(format, args...))
}

func (w *versionWatcher) dir(v uint64) string {
	return filepath.Join(w.blobs, "models", w.model, fmt.Sprintf("v%d", v))
}

func (w *versionWatcher) pass() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cat, err := readCatalog(ctx, w.js, w.model)
	if err != nil {
		return // NATS away or the model not there yet: next pass
	}
	for v := range w.seen {
		w.recheck(v)
	}
	for v := uint64(1); v <= cat.Version; v++ {
		if _, ok := w.seen[v]; ok || !cat.visible(v) {
			continue
		}
		w.first(v)
	}
}

// first verifies a version seen visible for the first time.
func (w *versionWatcher) first(v uint64) {
	m, files, err := readManifest(w.dir(v))
	if os.IsNotExist(err) {
		return // collected already
	}
	if err != nil {
		w.problem("v%d is visible but its manifest is unreadable: %v", v, err)
		w.seen[v] = nil
		return
	}
	if m.Version != v {
		w.problem("v%d: its manifest names version %d", v, m.Version)
	}
	stats := map[string]fileStat{}
	for _, ref := range files {
		path := filepath.Join(w.dir(v), ref.Path)
		st, err := statFile(path)
		if os.IsNotExist(err) {
			return // collected while looking
		}
		if msg := verifyFile(path, ref); msg != "" {
			w.problem("v%d (applied_seq %d, epoch %d): %s", v, m.AppliedSeq, m.LeaseEpoch, msg)
		}
		stats[ref.Path] = st
	}
	if st, err := statFile(filepath.Join(w.dir(v), "manifest.json")); err == nil {
		stats["manifest.json"] = st
	}
	w.seen[v] = stats
}

// recheck reports a change to any file of a version seen before.
func (w *versionWatcher) recheck(v uint64) {
	for name, before := range w.seen[v] {
		now, err := statFile(filepath.Join(w.dir(v), name))
		if os.IsNotExist(err) {
			continue // collected
		}
		if err == nil && now != before {
			w.problem("v%d: %s changed after the version became visible (size %d -> %d, inode %d -> %d)", v, name, before.size, now.size, before.ino, now.ino)
			w.seen[v][name] = now
		}
	}
}

func readManifest(dir string) (manifest, []*fileRef, error) {
	var m manifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return m, nil, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, nil, fmt.Errorf("%w: %s", err, b)
	}
	files := []*fileRef{m.DuckDB}
	for _, tb := range m.Tables {
		files = append(files, tb.Parquet)
	}
	for _, f := range files {
		if f == nil {
			return m, nil, fmt.Errorf("manifest without a file ref: %s", b)
		}
	}
	return m, files, nil
}

// verifyFile says how path differs from its manifest entry, "" if not.
func verifyFile(path string, ref *fileRef) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("%s: %v", ref.Path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Sprintf("%s: %v", ref.Path, err)
	}
	if n != ref.Bytes || hex.EncodeToString(h.Sum(nil)) != ref.Sha256 {
		return fmt.Sprintf("%s does not match its manifest (%d bytes, want %d; sha256 %s, want %s)", ref.Path, n, ref.Bytes, hex.EncodeToString(h.Sum(nil))[:12], ref.Sha256[:min(12, len(ref.Sha256))])
	}
	return ""
}

// waitPublishing waits, at most bound, until a holder is writing a version
// readers may not use yet: a version folder past the catalog's version
// without its manifest. It reports whether it saw one.
func waitPublishing(t *testing.T, js jetstream.JetStream, blobs, model string, bound time.Duration) bool {
	t.Helper()
	deadline := time.Now().Add(bound)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cat, err := readCatalog(ctx, js, model)
		cancel()
		require.NoError(t, err)
		entries, _ := os.ReadDir(filepath.Join(blobs, "models", model))
		for _, e := range entries {
			var v uint64
			if _, err := fmt.Sscanf(e.Name(), "v%d", &v); err != nil || v <= cat.Version || slices.Contains(cat.Abandoned, v) {
				continue
			}
			if _, err := os.Stat(filepath.Join(blobs, "models", model, e.Name(), "manifest.json")); os.IsNotExist(err) {
				return true
			}
		}
		time.Sleep(time.Millisecond)
	}
	return false
}
