// Package blob stores snapshot files under keys such as
// models/<model>/v<version>/model.duckdb, behind the Store interface. Dir
// keeps them in a local directory; every write lands under a temporary
// name, is fsynced and then renamed, so a reader sees a whole file or none.
// S3 keeps them in an S3 bucket, where every PUT is atomic per object.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// ErrNotFound is returned for a key that does not exist.
var ErrNotFound = errors.New("blob not found")

// Dir is a blob store in a local directory.
type Dir struct {
	root string
}

// NewDir returns a store rooted at root, creating it if needed.
func NewDir(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("create blob dir: %w", err)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return &Dir{root: abs}, nil
}

// Root returns the store's directory.
func (d *Dir) Root() string { return d.root }

func (d *Dir) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put writes r under key and returns the bytes written.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader) (int64, error) {
	p, err := d.path(key)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	n, err := WriteFile(ctx, p, r)
	if err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return n, nil
}

// WriteFile writes r to the file at path so that a reader, or the file
// system after a crash, sees the whole new file or the old one: it writes a
// temporary file beside it, fsyncs it, renames it over path and fsyncs the
// folder. It returns the bytes written.
func WriteFile(ctx context.Context, path string, r io.Reader) (int64, error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".put-*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // a no-op after the rename
	n, err := io.Copy(tmp, contextReader{ctx, r})
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return 0, err
	}
	return n, nil
}

// PutFile moves the local file at src under key. src must not be used
// afterwards. Within one file system this is a rename, else a copy.
func (d *Dir) PutFile(ctx context.Context, key, src string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	err = f.Sync()
	f.Close()
	if err != nil {
		return fmt.Errorf("put %s: sync source: %w", key, err)
	}
	if err := os.Rename(src, p); err == nil {
		return syncDir(filepath.Dir(p))
	}
	f, err = os.Open(src)
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	defer f.Close()
	if _, err := d.Put(ctx, key, f); err != nil {
		return err
	}
	return os.Remove(src)
}

// Open opens the blob at key for reading.
func (d *Dir) Open(_ context.Context, key string) (Object, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Link makes the blob at to a copy of the blob at from. Blobs are never
// modified once written, so a hard link serves where the file system has
// one; elsewhere it copies.
func (d *Dir) Link(ctx context.Context, from, to string) error {
	src, err := d.path(from)
	if err != nil {
		return err
	}
	dst, err := d.path(to)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("link %s: %w", to, err)
	}
	os.Remove(dst)
	if err := os.Link(src, dst); err == nil {
		return syncDir(filepath.Dir(dst))
	}
	f, err := d.Open(ctx, from)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = d.Put(ctx, to, f)
	return err
}

// Get reads the whole blob at key.
func (d *Dir) Get(ctx context.Context, key string) ([]byte, error) {
	f, err := d.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// List returns the names directly under the folder prefix, sorted; a
// missing folder lists as empty.
func (d *Dir) List(_ context.Context, prefix string) ([]string, error) {
	p, err := d.path(prefix)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// deleteAttempts bounds DeleteAll's passes over a folder that a writer
// keeps adding to.
const deleteAttempts = 20

// DeleteAll removes the blob or folder at prefix and everything below it.
// A file written into the folder while it is being removed makes
// os.RemoveAll fail with "directory not empty"; DeleteAll then passes over
// the folder again.
func (d *Dir) DeleteAll(ctx context.Context, prefix string) error {
	p, err := d.path(prefix)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		err = os.RemoveAll(p)
		if err == nil || !errors.Is(err, syscall.ENOTEMPTY) || attempt == deleteAttempts || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("delete %s: %w", prefix, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// contextReader stops a long copy when ctx ends.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (c contextReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
