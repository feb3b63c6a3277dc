package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// putVersion plays the db-manager: it writes a version's files and, when
// withManifest, its manifest. It returns the files by name.
func putVersion(t *testing.T, env *testEnv, model string, v uint64, withManifest bool) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	files := map[string][]byte{blob.DuckDBFile: randomBytes(t, 1000), "orders.parquet": randomBytes(t, 300)}
	for name, b := range files {
		_, err := env.blobs.Put(ctx, blob.Key(model, v, name), bytes.NewReader(b))
		require.NoError(t, err)
	}
	if !withManifest {
		return files
	}
	ref := func(name string) *teatreev1.FileRef {
		sum := sha256.Sum256(files[name])
		return &teatreev1.FileRef{Path: name, Bytes: int64(len(files[name])), Sha256: hex.EncodeToString(sum[:])}
	}
	m := &teatreev1.Manifest{
		Model: model, Version: v, AppliedSeq: v * 10, LeaseEpoch: 1,
		CreatedAt: time.Now().UTC().Format(time.RFC3339),
		Duckdb:    ref(blob.DuckDBFile),
		Tables:    []*teatreev1.TableManifest{{Name: "orders", Rows: 2, Parquet: ref("orders.parquet")}},
	}
	b, err := wire.Marshal(m)
	require.NoError(t, err)
	_, err = env.blobs.Put(ctx, blob.Key(model, v, blob.ManifestFile), bytes.NewReader(b))
	require.NoError(t, err)
	files[blob.ManifestFile] = b
	return files
}

// abandon records version as reserved and left by an earlier holder.
func abandon(t *testing.T, env *testEnv, model string, version uint64) {
	t.Helper()
	ctx := context.Background()
	spec, rev, err := catalog.GetModel(ctx, env.models, model)
	require.NoError(t, err)
	spec.AbandonedVersions = append(spec.AbandonedVersions, version)
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = env.models.Update(ctx, model, b, rev)
	require.NoError(t, err)
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return b
}

func TestListSnapshots(t *testing.T) {
	t.Parallel()
	checkListSnapshots(t, start(t))
}

// checkListSnapshots runs on a Dir (above) and on S3 (s3_test.go).
func checkListSnapshots(t *testing.T, env *testEnv) {
	env.createModel(t, "sales")
	env.createModel(t, "crm")
	putVersion(t, env, "sales", 1, true)
	putVersion(t, env, "sales", 2, false) // still uploading
	putVersion(t, env, "sales", 5, true)  // reserved by a holder that lost the model
	putVersion(t, env, "sales", 10, true)
	putVersion(t, env, "sales", 11, true) // cut short before the catalog named it
	setVersion(t, env, "sales", 10)
	abandon(t, env, "sales", 5)

	r := env.send(t, http.MethodGet, "/v1/models/sales/snapshots", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var list teatreev1.SnapshotList
	require.NoError(t, wire.Unmarshal(r.body, &list))
	require.Len(t, list.GetSnapshots(), 2)
	require.EqualValues(t, 10, list.GetSnapshots()[0].GetVersion(), "newest first, in number order")
	require.EqualValues(t, 1, list.GetSnapshots()[1].GetVersion())
	require.Equal(t, "orders.parquet", list.GetSnapshots()[0].GetTables()[0].GetParquet().GetPath())

	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/snapshots/11/model.duckdb", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/snapshots/5/model.duckdb", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales/snapshots/5/manifest.json", nil), http.StatusNotFound, "not_found")

	r = env.send(t, http.MethodGet, "/v1/models/crm/snapshots", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{}`, string(r.body))

	requireError(t, env.send(t, http.MethodGet, "/v1/models/nope/snapshots", nil), http.StatusNotFound, "not_found")
}

func TestDownloadSnapshot(t *testing.T) {
	t.Parallel()
	checkDownloadSnapshot(t, start(t))
}

// checkDownloadSnapshot runs on a Dir (above) and on S3 (s3_test.go).
func checkDownloadSnapshot(t *testing.T, env *testEnv) {
	env.createModel(t, "sales")
	env.createModel(t, "crm")
	putVersion(t, env, "sales", 1, true)
	files := putVersion(t, env, "sales", 2, true)
	setAppliedSeq(t, env, "sales", 20) // version 1
	setAppliedSeq(t, env, "sales", 20) // version 2
	db := files[blob.DuckDBFile]
	sum := sha256.Sum256(db)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`

	r := env.send(t, http.MethodGet, "/v1/models/sales/snapshots/latest/model.duckdb", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.True(t, bytes.Equal(db, r.body))
	require.Equal(t, etag, r.header.Get("ETag"))
	require.Equal(t, "2", r.header.Get("Tt-Version"))
	require.Equal(t, "application/octet-stream", r.header.Get("Content-Type"))
	require.Equal(t, "bytes", r.header.Get("Accept-Ranges"))

	r = env.send(t, http.MethodGet, "/v1/models/sales/snapshots/latest/model.duckdb", nil, "Range", "bytes=0-9")
	require.Equal(t, http.StatusPartialContent, r.status)
	require.Equal(t, db[:10], r.body)
	require.Equal(t, "bytes 0-9/1000", r.header.Get("Content-Range"))

	r = env.send(t, http.MethodGet, "/v1/models/sales/snapshots/2/model.duckdb", nil, "If-None-Match", etag)
	require.Equal(t, http.StatusNotModified, r.status)
	require.Empty(t, r.body)

	r = env.send(t, http.MethodGet, "/v1/models/sales/snapshots/1/orders.parquet", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.Equal(t, "application/vnd.apache.parquet", r.header.Get("Content-Type"))
	require.Equal(t, "1", r.header.Get("Tt-Version"))

	r = env.send(t, http.MethodGet, "/v1/models/sales/snapshots/2/manifest.json", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	require.Equal(t, files[blob.ManifestFile], r.body)
	require.NotEmpty(t, r.header.Get("ETag"))

	for path, want := range map[string]int{
		"/v1/models/sales/snapshots/2/customers.parquet": http.StatusNotFound,   // not in the manifest
		"/v1/models/sales/snapshots/3/model.duckdb":      http.StatusNotFound,   // no such version
		"/v1/models/crm/snapshots/latest/model.duckdb":   http.StatusNotFound,   // nothing published yet
		"/v1/models/nope/snapshots/latest/model.duckdb":  http.StatusNotFound,   // no such model
		"/v1/models/sales/snapshots/2/notes.txt":         http.StatusBadRequest, // not a snapshot file
		"/v1/models/sales/snapshots/2/_tt_x.parquet":     http.StatusBadRequest, // not a table name
		"/v1/models/sales/snapshots/0/model.duckdb":      http.StatusBadRequest,
		"/v1/models/sales/snapshots/newest/model.duckdb": http.StatusBadRequest,
		"/v1/models/Sales/snapshots/1/model.duckdb":      http.StatusBadRequest,
	} {
		r := env.send(t, http.MethodGet, path, nil)
		require.Equal(t, want, r.status, "%s: %s", path, r.body)
		require.NotEmpty(t, errorCode(t, r), path)
	}
}
