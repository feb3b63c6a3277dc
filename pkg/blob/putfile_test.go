package blob_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
)

func TestPutFileRenamesOnTheSameFileSystem(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tmp := t.TempDir()
	d, err := blob.NewDir(filepath.Join(tmp, "blobs"))
	require.NoError(t, err)
	src := filepath.Join(tmp, "scratch.duckdb")
	require.NoError(t, os.WriteFile(src, []byte("duckdb bytes"), 0o644))
	before, err := os.Stat(src)
	require.NoError(t, err)

	key := blob.Key("sales", 3, blob.DuckDBFile)
	require.NoError(t, d.PutFile(ctx, key, src))

	_, err = os.Stat(src)
	require.True(t, errors.Is(err, fs.ErrNotExist), "source must be gone: %v", err)
	got, err := d.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, "duckdb bytes", string(got))
	after, err := os.Stat(filepath.Join(d.Root(), filepath.FromSlash(key)))
	require.NoError(t, err)
	require.True(t, os.SameFile(before, after), "a rename keeps the file, not a copy")
}

func TestPutFileMissingSource(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	err := d.PutFile(context.Background(), "a/b", filepath.Join(t.TempDir(), "none"))
	require.Error(t, err)
	_, err = d.Get(context.Background(), "a/b")
	require.ErrorIs(t, err, blob.ErrNotFound)
}
