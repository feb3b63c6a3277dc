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

func TestListIsSortedAndHidesDotFiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDir(t)
	for _, v := range []uint64{10, 2, 1} {
		_, err := d.Put(ctx, blob.Key("sales", v, blob.ManifestFile), strings.NewReader("{}"))
		require.NoError(t, err)
	}
	_, err := d.Put(ctx, blob.ModelPrefix("sales")+"/notes", strings.NewReader("x"))
	require.NoError(t, err)
	// A write in progress, as Put leaves it before its rename.
	require.NoError(t, os.WriteFile(filepath.Join(d.Root(), "models", "sales", ".put-123"), []byte("partial"), 0o644))

	names, err := d.List(ctx, blob.ModelPrefix("sales"))
	require.NoError(t, err)
	require.Equal(t, []string{"notes", "v1", "v10", "v2"}, names)

	names, err = d.List(ctx, blob.VersionPrefix("sales", 2))
	require.NoError(t, err)
	require.Equal(t, []string{blob.ManifestFile}, names)
}

func TestListMissingFolderIsEmpty(t *testing.T) {
	t.Parallel()
	d := newDir(t)
	names, err := d.List(context.Background(), blob.ModelPrefix("none"))
	require.NoError(t, err)
	require.Empty(t, names)
}
