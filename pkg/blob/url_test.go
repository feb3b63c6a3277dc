package blob_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/s3test"
	"github.com/teatree-dev/teatree/pkg/blob"
)

// TestDirURLs: a directory store's URLs are file:// URLs of the blob's
// path, and a file written there is the blob.
func TestDirURLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDir(t)
	w, err := d.WriteURL(ctx, "calls/m/c1/1", time.Minute)
	require.NoError(t, err)
	u, err := url.Parse(w)
	require.NoError(t, err)
	require.Equal(t, "file", u.Scheme)
	require.True(t, strings.HasPrefix(u.Path, d.Root()+"/"), u.Path)
	require.NoError(t, os.WriteFile(u.Path, []byte("result"), 0o644))

	got, err := d.Get(ctx, "calls/m/c1/1")
	require.NoError(t, err)
	require.Equal(t, "result", string(got))
	r, err := d.ReadURL(ctx, "calls/m/c1/1", time.Minute)
	require.NoError(t, err)
	require.Equal(t, w, r)

	_, err = d.ReadURL(ctx, "../x", time.Minute)
	require.Error(t, err)
}

// TestS3URLs: a pre-signed PUT writes the blob and a pre-signed GET reads
// it, with nothing but net/http.
func TestS3URLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := s3test.Start(t)
	s := srv.Store(t, "tenant").(blob.URLer)

	w, err := s.WriteURL(ctx, "calls/m/c1/1", time.Minute)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(w, srv.Endpoint+"/"), w)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, w, bytes.NewReader([]byte("result")))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	got, err := srv.Store(t, "tenant").Get(ctx, "calls/m/c1/1")
	require.NoError(t, err)
	require.Equal(t, "result", string(got))

	r, err := s.ReadURL(ctx, "calls/m/c1/1", time.Minute)
	require.NoError(t, err)
	resp, err = http.Get(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "result", string(body))

	// The URL is the signature: without it the bucket refuses.
	plain, _, _ := strings.Cut(r, "?")
	resp, err = http.Get(plain)
	require.NoError(t, err)
	resp.Body.Close()
	require.NotEqual(t, http.StatusOK, resp.StatusCode)
}
