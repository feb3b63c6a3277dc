package blob_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
)

func TestUncleanKeysAreRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	parent := t.TempDir()
	d, err := blob.NewDir(filepath.Join(parent, "blobs"))
	require.NoError(t, err)
	// A real blob and a real file outside the store, for the operations
	// that read or remove.
	_, err = d.Put(ctx, "models/m/v1/model.duckdb", strings.NewReader("inside"))
	require.NoError(t, err)
	outside := filepath.Join(parent, "outside")
	require.NoError(t, os.WriteFile(outside, []byte("outside"), 0o644))

	bad := []string{
		"",
		".",
		"..",
		"../outside",
		"models/../../outside",
		"models/m/../../../outside",
		"/etc/passwd",
		outside,
		"./models",
		"models/",
		"models//m",
		"models/./m",
		"models/m/..",
	}
	for _, key := range bad {
		_, err := d.Put(ctx, key, strings.NewReader("x"))
		require.Error(t, err, "Put %q", key)
		_, err = d.Get(ctx, key)
		require.Error(t, err, "Get %q", key)
		_, err = d.Open(ctx, key)
		require.Error(t, err, "Open %q", key)
		_, err = d.List(ctx, key)
		require.Error(t, err, "List %q", key)
		require.Error(t, d.DeleteAll(ctx, key), "DeleteAll %q", key)
		require.Error(t, d.Link(ctx, "models/m/v1/model.duckdb", key), "Link to %q", key)
		require.Error(t, d.Link(ctx, key, "models/m/v9/model.duckdb"), "Link from %q", key)
		src := filepath.Join(t.TempDir(), "src")
		require.NoError(t, os.WriteFile(src, []byte("x"), 0o644))
		require.Error(t, d.PutFile(ctx, key, src), "PutFile %q", key)
	}

	got, err := os.ReadFile(outside)
	require.NoError(t, err)
	require.Equal(t, "outside", string(got), "nothing outside the store was touched")
	got, err = d.Get(ctx, "models/m/v1/model.duckdb")
	require.NoError(t, err)
	require.Equal(t, "inside", string(got))
	_, err = d.Get(ctx, "models/m/v9/model.duckdb")
	require.ErrorIs(t, err, blob.ErrNotFound)
	entries, err := os.ReadDir(parent)
	require.NoError(t, err)
	require.Len(t, entries, 2, "only the store and the outside file")
}

func TestLayoutKeys(t *testing.T) {
	t.Parallel()
	require.Equal(t, "models/sales", blob.ModelPrefix("sales"))
	require.Equal(t, "models/sales/v7", blob.VersionPrefix("sales", 7))
	require.Equal(t, "models/sales/v7/model.duckdb", blob.Key("sales", 7, blob.DuckDBFile))
	require.Equal(t, "models/sales/v7/orders.parquet", blob.Key("sales", 7, blob.ParquetFile("orders")))
	require.Equal(t, "uploads/sales/r1", blob.UploadKey("sales", "r1"))
}

func TestParseVersionDir(t *testing.T) {
	t.Parallel()
	for _, v := range []uint64{1, 7, 10, 1 << 63, ^uint64(0)} {
		got, ok := blob.ParseVersionDir(blob.VersionDir(v))
		require.True(t, ok, "v%d", v)
		require.Equal(t, v, got)
	}
	for _, name := range []string{
		"", "v", "v0", "1", "x1", "V1", "v-1", "v+1", "v1a", "v 1", "v1.5", ".v1", "v01", "v007",
		"v18446744073709551616", // one past the largest uint64
	} {
		_, ok := blob.ParseVersionDir(name)
		require.False(t, ok, "%q", name)
	}
}
