package blob_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
)

// newDir returns a store in a fresh temporary directory.
func newDir(t *testing.T) *blob.Dir {
	t.Helper()
	d, err := blob.NewDir(filepath.Join(t.TempDir(), "blobs"))
	require.NoError(t, err)
	return d
}

func TestPutGetOpen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDir(t)
	key := blob.Key("sales", 1, blob.ManifestFile)

	n, err := d.Put(ctx, key, strings.NewReader("hello, blob"))
	require.NoError(t, err)
	require.EqualValues(t, len("hello, blob"), n)

	got, err := d.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "hello, blob", string(got))
	onDisk, err := os.ReadFile(filepath.Join(d.Root(), "models", "sales", "v1", "manifest.json"))
	require.NoError(t, err)
	require.Equal(t, "hello, blob", string(onDisk))

	obj, err := d.Open(ctx, key)
	require.NoError(t, err)
	defer obj.Close()
	fi, err := obj.Stat()
	require.NoError(t, err)
	require.EqualValues(t, n, fi.Size())
	_, err = obj.Seek(7, io.SeekStart)
	require.NoError(t, err)
	rest, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, "blob", string(rest))

	// A second Put replaces the blob whole and leaves no temporary file.
	_, err = d.Put(ctx, key, bytes.NewReader([]byte("v2")))
	require.NoError(t, err)
	got, err = d.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "v2", string(got))
	entries, err := os.ReadDir(filepath.Join(d.Root(), blob.VersionPrefix("sales", 1)))
	require.NoError(t, err)
	require.Len(t, entries, 1)
	require.Equal(t, blob.ManifestFile, entries[0].Name())
}

func TestMissingBlobIsNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDir(t)
	_, err := d.Get(ctx, "models/none/v1/model.duckdb")
	require.True(t, errors.Is(err, blob.ErrNotFound), "%v", err)
	_, err = d.Open(ctx, "models/none/v1/model.duckdb")
	require.True(t, errors.Is(err, blob.ErrNotFound), "%v", err)
}

func TestPutStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := d.Put(ctx, "a/b", strings.NewReader("data"))
	require.ErrorIs(t, err, context.Canceled)
	_, err = d.Get(context.Background(), "a/b")
	require.ErrorIs(t, err, blob.ErrNotFound)
	entries, err := os.ReadDir(filepath.Join(d.Root(), "a"))
	require.NoError(t, err)
	require.Empty(t, entries, "no temporary file left behind")
}
