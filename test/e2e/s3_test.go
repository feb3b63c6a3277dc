package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/loopback"
	"github.com/teatree-dev/teatree/internal/s3test"
)

// TestUpWithS3Blobs runs `teatree up --blobs s3://...` against a real S3
// server, with the credentials in the process's environment as the AWS
// tools read them: a write publishes a version into the bucket, and the
// gateway serves it back whole and by range.
func TestUpWithS3Blobs(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	ip := loopback.IP(t)
	s := &server{t: t, data: t.TempDir(), httpAddr: ip + ":" + portHTTP, natsAddr: ip + ":" + portNATS}
	args := []string{"up", "--data", s.data, "--http", s.httpAddr, "--nats", s.natsAddr, "--lease-ttl", "3s", "--blobs", srv.URL("prod/teatree")}
	s.proc = newProc(t, "teatree up", binary, args, readyTeatree("teatree is up.", "http://"+s.httpAddr))
	s.env = srv.Env()
	s.start()

	createModel(t, s, `{"id":"sales","snapshot":{"interval_ms":1,"every_mutations":1}}`)
	code, body, _ := do(t, http.MethodPost, s.url("/v1/models/sales/tables/orders/rows?wait=applied"), "text/csv", []byte("id,amount\n1,9.5\n2,3\n"))
	require.Equal(t, http.StatusOK, code, string(body))

	var list struct {
		Snapshots []struct {
			Version uint64 `json:"version"`
			Duckdb  struct {
				Bytes  int64  `json:"bytes"`
				Sha256 string `json:"sha256"`
			} `json:"duckdb"`
		} `json:"snapshots"`
	}
	require.Eventually(t, func() bool {
		code, body, _ := do(t, http.MethodGet, s.url("/v1/models/sales/snapshots"), "", nil)
		return code == http.StatusOK && json.Unmarshal(body, &list) == nil && len(list.Snapshots) > 0
	}, 30*time.Second, 50*time.Millisecond, "a version")
	v := list.Snapshots[0]

	// The version is in the bucket, below the prefix, and not on disk.
	store := srv.Store(t, "prod/teatree")
	stored, err := store.Get(context.Background(), fmt.Sprintf("models/sales/v%d/model.duckdb", v.Version))
	require.NoError(t, err)
	sum := sha256.Sum256(stored)
	require.Equal(t, v.Duckdb.Sha256, hex.EncodeToString(sum[:]))
	_, err = os.Stat(filepath.Join(s.data, "blobs"))
	require.ErrorIs(t, err, os.ErrNotExist, "no local blob directory with --blobs s3://")

	fileURL := s.url(fmt.Sprintf("/v1/models/sales/snapshots/%d/model.duckdb", v.Version))
	code, file, hdr := do(t, http.MethodGet, fileURL, "", nil)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, stored, file)
	require.Equal(t, `"`+v.Duckdb.Sha256+`"`, hdr.Get("ETag"))
	req, err := http.NewRequest(http.MethodGet, fileURL, nil)
	require.NoError(t, err)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	part, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, file[100:200], part)
}

// TestUpWithBadS3URLFailsAtStart: a malformed --blobs is refused before
// anything starts, with the reason.
func TestUpWithBadS3URLFailsAtStart(t *testing.T) {
	t.Parallel()
	ip := loopback.IP(t)
	out, err := exec.Command(binary, "up", "--data", t.TempDir(), "--http", ip+":"+portHTTP, "--nats", ip+":"+portNATS,
		"--blobs", "s3://bucket/p?regoin=x").CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), `unknown parameter "regoin"`)
}
