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

func TestLinkSharesTheContent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDir(t)
	from := blob.Key("sales", 1, blob.ParquetFile("orders"))
	to := blob.Key("sales", 2, blob.ParquetFile("orders"))
	_, err := d.Put(ctx, from, strings.NewReader("parquet bytes"))
	require.NoError(t, err)

	require.NoError(t, d.Link(ctx, from, to))
	got, err := d.Get(ctx, to)
	require.NoError(t, err)
	require.Equal(t, "parquet bytes", string(got))
	a, err := os.Stat(filepath.Join(d.Root(), filepath.FromSlash(from)))
	require.NoError(t, err)
	b, err := os.Stat(filepath.Join(d.Root(), filepath.FromSlash(to)))
	require.NoError(t, err)
	require.True(t, os.SameFile(a, b), "one file system: a hard link")

	// Linking over an existing blob replaces it.
	other := blob.Key("sales", 1, blob.DuckDBFile)
	_, err = d.Put(ctx, other, strings.NewReader("duckdb bytes"))
	require.NoError(t, err)
	require.NoError(t, d.Link(ctx, other, to))
	got, err = d.Get(ctx, to)
	require.NoError(t, err)
	require.Equal(t, "duckdb bytes", string(got))
	got, err = d.Get(ctx, from)
	require.NoError(t, err)
	require.Equal(t, "parquet bytes", string(got), "the old target's other name is untouched")
}

func TestLinkMissingSource(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	err := d.Link(context.Background(), "models/m/v1/none", "models/m/v2/none")
	require.ErrorIs(t, err, blob.ErrNotFound)
}
