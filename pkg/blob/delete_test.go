package blob_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
)

func TestDeleteAllRemovesTheFolderOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDir(t)
	for _, key := range []string{
		blob.Key("sales", 1, blob.DuckDBFile),
		blob.Key("sales", 1, blob.ManifestFile),
		blob.Key("sales", 2, blob.DuckDBFile),
		blob.Key("salesx", 1, blob.DuckDBFile),
	} {
		_, err := d.Put(ctx, key, strings.NewReader(key))
		require.NoError(t, err)
	}

	require.NoError(t, d.DeleteAll(ctx, blob.VersionPrefix("sales", 1)))
	names, err := d.List(ctx, blob.ModelPrefix("sales"))
	require.NoError(t, err)
	require.Equal(t, []string{"v2"}, names)

	require.NoError(t, d.DeleteAll(ctx, blob.ModelPrefix("sales")))
	names, err = d.List(ctx, "models")
	require.NoError(t, err)
	require.Equal(t, []string{"salesx"}, names)
	got, err := d.Get(ctx, blob.Key("salesx", 1, blob.DuckDBFile))
	require.NoError(t, err)
	require.Equal(t, blob.Key("salesx", 1, blob.DuckDBFile), string(got))

	// A single blob, and a key that does not exist.
	require.NoError(t, d.DeleteAll(ctx, blob.Key("salesx", 1, blob.DuckDBFile)))
	_, err = d.Get(ctx, blob.Key("salesx", 1, blob.DuckDBFile))
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.NoError(t, d.DeleteAll(ctx, blob.ModelPrefix("none")))
}
