package blob_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/s3test"
	"github.com/teatree-dev/teatree/pkg/blob"
)

// TestStoreConformance runs the same checks against each Store, so Dir and
// S3 behave alike wherever teatree relies on it.
func TestStoreConformance(t *testing.T) {
	t.Parallel()
	stores := map[string]func(t *testing.T) blob.Store{
		"dir": func(t *testing.T) blob.Store { return newDir(t) },
		"s3": func(t *testing.T) blob.Store {
			srv := s3test.Start(t)
			return srv.Store(t, "some/prefix")
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Run("PutGetOpen", func(t *testing.T) { checkPutGetOpen(t, s) })
			t.Run("SeekAndRange", func(t *testing.T) { checkSeek(t, s) })
			t.Run("List", func(t *testing.T) { checkList(t, s) })
			t.Run("DeleteAll", func(t *testing.T) { checkDeleteAll(t, s) })
			t.Run("Link", func(t *testing.T) { checkLink(t, s) })
			t.Run("PutFileMultipart", func(t *testing.T) { checkPutFile(t, s) })
			t.Run("NotFound", func(t *testing.T) { checkNotFound(t, s) })
			t.Run("BadKey", func(t *testing.T) { checkBadKey(t, s) })
		})
	}
}

func checkPutGetOpen(t *testing.T, s blob.Store) {
	ctx := context.Background()
	key := "pgo/models/m/v1/" + blob.ManifestFile
	n, err := s.Put(ctx, key, strings.NewReader(`{"v":1}`))
	require.NoError(t, err)
	require.EqualValues(t, 7, n)
	got, err := s.Get(ctx, key)
	require.NoError(t, err)
	require.Equal(t, `{"v":1}`, string(got))

	// A second Put replaces the blob whole.
	_, err = s.Put(ctx, key, strings.NewReader(`{"v":2,"more":true}`))
	require.NoError(t, err)
	obj, err := s.Open(ctx, key)
	require.NoError(t, err)
	st, err := obj.Stat()
	require.NoError(t, err)
	require.EqualValues(t, 19, st.Size())
	require.Equal(t, blob.ManifestFile, st.Name())
	require.False(t, st.ModTime().IsZero())
	all, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, `{"v":2,"more":true}`, string(all))
	require.NoError(t, obj.Close())
}

func checkSeek(t *testing.T, s blob.Store) {
	ctx := context.Background()
	body := []byte("0123456789abcdefghij")
	_, err := s.Put(ctx, "seek/blob", bytes.NewReader(body))
	require.NoError(t, err)
	obj, err := s.Open(ctx, "seek/blob")
	require.NoError(t, err)
	defer obj.Close()

	// As http.ServeContent does: size by seeking to the end, then a range.
	end, err := obj.Seek(0, io.SeekEnd)
	require.NoError(t, err)
	require.EqualValues(t, len(body), end)
	_, err = obj.Seek(5, io.SeekStart)
	require.NoError(t, err)
	part := make([]byte, 4)
	_, err = io.ReadFull(obj, part)
	require.NoError(t, err)
	require.Equal(t, "5678", string(part))
	// Reading on continues where the range ended.
	_, err = io.ReadFull(obj, part)
	require.NoError(t, err)
	require.Equal(t, "9abc", string(part))
	// Back, relative, and from the end.
	pos, err := obj.Seek(-3, io.SeekCurrent)
	require.NoError(t, err)
	require.EqualValues(t, 10, pos)
	_, err = io.ReadFull(obj, part[:1])
	require.NoError(t, err)
	require.Equal(t, "a", string(part[:1]))
	_, err = obj.Seek(-2, io.SeekEnd)
	require.NoError(t, err)
	rest, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, "ij", string(rest))
	// At and past the end a read is EOF.
	_, err = obj.Seek(100, io.SeekStart)
	require.NoError(t, err)
	n, err := obj.Read(part)
	require.Zero(t, n)
	require.ErrorIs(t, err, io.EOF)
	_, err = obj.Seek(-1, io.SeekStart)
	require.Error(t, err)
}

func checkList(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range []string{"list/models/m/v2/a", "list/models/m/v10/b", "list/models/m/v1/c", "list/models/m/file", "list/models/other/v1/d"} {
		_, err := s.Put(ctx, k, strings.NewReader(k))
		require.NoError(t, err)
	}
	names, err := s.List(ctx, "list/models/m")
	require.NoError(t, err)
	require.Equal(t, []string{"file", "v1", "v10", "v2"}, names, "files and folders, sorted, one level")
	names, err = s.List(ctx, "list/models")
	require.NoError(t, err)
	require.Equal(t, []string{"m", "other"}, names)
	names, err = s.List(ctx, "list/models/missing")
	require.NoError(t, err)
	require.Empty(t, names)
	// A name that only shares a prefix is no child.
	_, err = s.Put(ctx, "list/models/mm", strings.NewReader("x"))
	require.NoError(t, err)
	names, err = s.List(ctx, "list/models/m")
	require.NoError(t, err)
	require.Equal(t, []string{"file", "v1", "v10", "v2"}, names)
}

func checkDeleteAll(t *testing.T, s blob.Store) {
	ctx := context.Background()
	keep := []string{"del/models/m/v10/a", "del/models/m/v1x", "del/models/other/v1/a"}
	gone := []string{"del/models/m/v1/a", "del/models/m/v1/deep/b"}
	for _, k := range append(append([]string{}, keep...), gone...) {
		_, err := s.Put(ctx, k, strings.NewReader(k))
		require.NoError(t, err)
	}
	require.NoError(t, s.DeleteAll(ctx, "del/models/m/v1"))
	for _, k := range gone {
		_, err := s.Get(ctx, k)
		require.ErrorIs(t, err, blob.ErrNotFound, k)
	}
	for _, k := range keep {
		_, err := s.Get(ctx, k)
		require.NoError(t, err, "%s shares only a name prefix with the deleted folder", k)
	}
	// A single blob, and a missing one.
	require.NoError(t, s.DeleteAll(ctx, "del/models/m/v1x"))
	_, err := s.Get(ctx, "del/models/m/v1x")
	require.ErrorIs(t, err, blob.ErrNotFound)
	require.NoError(t, s.DeleteAll(ctx, "del/models/never"))
}

func checkLink(t *testing.T, s blob.Store) {
	ctx := context.Background()
	_, err := s.Put(ctx, "link/v1/orders.parquet", strings.NewReader("parquet bytes"))
	require.NoError(t, err)
	require.NoError(t, s.Link(ctx, "link/v1/orders.parquet", "link/v2/orders.parquet"))
	got, err := s.Get(ctx, "link/v2/orders.parquet")
	require.NoError(t, err)
	require.Equal(t, "parquet bytes", string(got))
	// Deleting the source leaves the copy.
	require.NoError(t, s.DeleteAll(ctx, "link/v1"))
	got, err = s.Get(ctx, "link/v2/orders.parquet")
	require.NoError(t, err)
	require.Equal(t, "parquet bytes", string(got))
	err = s.Link(ctx, "link/v1/orders.parquet", "link/v3/orders.parquet")
	require.ErrorIs(t, err, blob.ErrNotFound)
}

// multipartSize is above the 16 MiB from which the S3 uploader sends parts.
const multipartSize = 17<<20 + 123

func checkPutFile(t *testing.T, s blob.Store) {
	ctx := context.Background()
	body := make([]byte, multipartSize)
	_, err := rand.Read(body)
	require.NoError(t, err)
	src := filepath.Join(t.TempDir(), "model.duckdb")
	require.NoError(t, os.WriteFile(src, body, 0o644))
	require.NoError(t, s.PutFile(ctx, "putfile/v1/model.duckdb", src))
	_, err = os.Stat(src)
	require.ErrorIs(t, err, os.ErrNotExist, "PutFile consumes its source")
	got, err := s.Get(ctx, "putfile/v1/model.duckdb")
	require.NoError(t, err)
	require.True(t, bytes.Equal(body, got), "the whole file, byte for byte")

	// A large stream of unknown length goes up whole too.
	n, err := s.Put(ctx, "putfile/upload", io.MultiReader(bytes.NewReader(body), strings.NewReader("tail")))
	require.NoError(t, err)
	require.EqualValues(t, len(body)+4, n)
	obj, err := s.Open(ctx, "putfile/upload")
	require.NoError(t, err)
	defer obj.Close()
	_, err = obj.Seek(int64(len(body)), io.SeekStart)
	require.NoError(t, err)
	tail, err := io.ReadAll(obj)
	require.NoError(t, err)
	require.Equal(t, "tail", string(tail))
}

func checkNotFound(t *testing.T, s blob.Store) {
	ctx := context.Background()
	_, err := s.Get(ctx, "none/here")
	require.ErrorIs(t, err, blob.ErrNotFound)
	_, err = s.Open(ctx, "none/here")
	require.ErrorIs(t, err, blob.ErrNotFound)
}

func checkBadKey(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, k := range []string{"", "/abs", "a/../b", "../up", "a//b"} {
		_, err := s.Put(ctx, k, strings.NewReader("x"))
		require.Error(t, err, "key %q", k)
		require.NotErrorIs(t, err, blob.ErrNotFound)
	}
}
