package query

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
)

// version is one snapshot version opened read-only, shared by every query
// that reads it.
type version struct {
	versionKey
	db   *sql.DB
	path string
	// ready closes once db is open (or err is set).
	ready    chan struct{}
	err      error
	refs     int
	lastUsed time.Time
	// pin keeps the version from garbage collection while it is open.
	pin string
}

type versionKey struct {
	model   string
	version uint64
}

// versions opens snapshot versions on demand and closes those that no
// query has used for a while.
type versions struct {
	cfg   Config
	blobs Blobs
	pins  jetstream.KeyValue
	log   *slog.Logger
	mu    sync.Mutex
	open  map[versionKey]*version
}

func newVersions(cfg Config, deps Deps) *versions {
	return &versions{cfg: cfg, blobs: deps.Blobs, pins: deps.Pins, log: deps.Log, open: map[versionKey]*version{}}
}

// acquire returns the version opened, for one query; release gives it back.
func (vs *versions) acquire(ctx context.Context, model string, v uint64) (*version, func(), error) {
	k := versionKey{model, v}
	vs.mu.Lock()
	ver := vs.open[k]
	if ver == nil {
		ver = &version{versionKey: k, ready: make(chan struct{})}
		vs.open[k] = ver
		go vs.load(k, ver)
	}
	ver.refs++
	vs.mu.Unlock()
	release := func() {
		vs.mu.Lock()
		ver.refs--
		ver.lastUsed = time.Now()
		vs.mu.Unlock()
	}
	select {
	case <-ver.ready:
	case <-ctx.Done():
		release()
		return nil, nil, ctx.Err()
	}
	if ver.err != nil {
		release()
		vs.mu.Lock()
		if vs.open[k] == ver {
			delete(vs.open, k) // let the next query try again
		}
		vs.mu.Unlock()
		return nil, nil, ver.err
	}
	return ver, release, nil
}

// load copies the version's file into the cache and opens it.
func (vs *versions) load(k versionKey, ver *version) {
	defer close(ver.ready)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// Pin first: a version collected between the catalog read and the
	// fetch would be gone.
	if ver.pin, ver.err = catalog.Pin(ctx, vs.pins, k.model, k.version); ver.err != nil {
		return
	}
	dir := filepath.Join(vs.cfg.CacheDir, k.model, blob.VersionDir(k.version))
	ver.path = filepath.Join(dir, blob.DuckDBFile)
	if _, err := os.Stat(ver.path); err != nil {
		if ver.err = vs.fetch(ctx, k, dir); ver.err != nil {
			return
		}
	}
	ver.db, ver.err = openHardened(ctx, ver.path, vs.cfg)
}

func (vs *versions) fetch(ctx context.Context, k versionKey, dir string) error {
	src, err := vs.blobs.Open(ctx, blob.Key(k.model, k.version, blob.DuckDBFile))
	if errors.Is(err, blob.ErrNotFound) {
		return apierr.Errorf(apierr.NotFound, "version %d of model %s no longer exists", k.version, k.model)
	}
	if err != nil {
		return fmt.Errorf("fetch version %d of %s: %w", k.version, k.model, err)
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".fetch-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("fetch version %d of %s: %w", k.version, k.model, err)
	}
	return os.Rename(tmp.Name(), filepath.Join(dir, blob.DuckDBFile))
}

// openHardened opens a version read-only, with no way out of it: no file
// system or network access, no extensions, no secrets, bounded memory,
// threads and temp space, and a configuration that cannot be changed.
func openHardened(ctx context.Context, path string, cfg Config) (*sql.DB, error) {
	q := url.Values{}
	q.Set("access_mode", "read_only")
	q.Set("enable_external_access", "false")
	q.Set("autoinstall_known_extensions", "false")
	q.Set("autoload_known_extensions", "false")
	q.Set("allow_community_extensions", "false")
	q.Set("allow_persistent_secrets", "false")
	q.Set("memory_limit", cfg.MemoryLimit)
	q.Set("threads", strconv.Itoa(cfg.Threads))
	q.Set("max_temp_directory_size", cfg.MaxTempSize)
	q.Set("lock_configuration", "true")
	connector, err := duckdb.NewConnector(path+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.Slots)
	// Check rather than trust: a version must never be queried unlocked.
	var locked, external string
	err = db.QueryRowContext(ctx, "SELECT current_setting('lock_configuration')::VARCHAR, current_setting('enable_external_access')::VARCHAR").Scan(&locked, &external)
	if err == nil && (locked != "true" || external != "false") {
		err = fmt.Errorf("settings not in force: lock_configuration=%s enable_external_access=%s", locked, external)
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("harden %s: %w", path, err)
	}
	return db, nil
}

// collect closes versions that no query has used for IdleClose, and
// removes their cached files.
func (vs *versions) collect() {
	vs.mu.Lock()
	var idle []*version
	for k, v := range vs.open {
		select {
		case <-v.ready:
		default:
			continue
		}
		if v.refs == 0 && time.Since(v.lastUsed) > vs.cfg.IdleClose {
			idle = append(idle, v)
			delete(vs.open, k)
		}
	}
	vs.mu.Unlock()
	for _, v := range idle {
		vs.close(v)
	}
}

// close closes a version no query uses and gives up its pin.
func (vs *versions) close(v *version) {
	if v.db != nil {
		v.db.Close()
	}
	os.RemoveAll(filepath.Dir(v.path))
	if v.pin != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := catalog.Unpin(ctx, vs.pins, v.model, v.version, v.pin); err != nil {
			vs.log.Warn("unpin version", "model", v.model, "version", v.version, "err", err)
		}
	}
}

// renewPins renews the pin of every open version.
func (vs *versions) renewPins(ctx context.Context) {
	vs.mu.Lock()
	var open []*version
	for _, v := range vs.open {
		select {
		case <-v.ready:
			if v.pin != "" {
				open = append(open, v)
			}
		default:
		}
	}
	vs.mu.Unlock()
	for _, v := range open {
		if err := catalog.RenewPin(ctx, vs.pins, v.model, v.version, v.pin); err != nil {
			vs.log.WarnContext(ctx, "renew pin", "model", v.model, "version", v.version, "err", err)
		}
	}
}

func (vs *versions) closeAll() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for k, v := range vs.open {
		<-v.ready
		vs.close(v)
		delete(vs.open, k)
	}
}
