package stack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/internal/s3test"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/client"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/node"
	"github.com/teatree-dev/teatree/services/stack"
)

// TestStackOnS3 runs every service with its snapshots in a bucket of a
// real S3 server, named by --blobs s3://..., with the credentials in the
// environment as a deployment has them: versions are published and
// downloaded (whole, by Range, by ETag), a pulled version is whole and
// right, old versions are collected from the bucket while a pinned one
// stays, a query reads a version from the bucket, and a body too large
// for one message goes through the bucket and is deleted from it once
// applied.
func TestStackOnS3(t *testing.T) {
	// Not parallel: the AWS credentials are in the environment.
	srv := s3test.Start(t)
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	st := runStack(t, stack.Config{
		Services: stack.AllServices,
		Boot:     natsboot.Config{LeaseTTL: 2 * time.Second},
		// Small messages, so a 3 MiB body goes through the bucket.
		Embedded: natsboot.ServerConfig{MaxPayload: 1 << 20},
		Data:     t.TempDir(),
		Blobs:    srv.URL("teatree"),
		HTTPAddr: "127.0.0.1:0",
		MaxBody:  64 << 20,
		Node:     node.Config{ID: "n1", Capabilities: []string{"duckdb"}, Slots: 4, Memory: 4 << 30, Threads: 1},
	})
	store := srv.Store(t, "teatree")
	c := client.New(st.HTTPURL)
	const model = "sales"
	_, err := c.CreateModel(ctx, &teatreev1.ModelSpec{Id: model, Snapshot: &teatreev1.SnapshotPolicy{IntervalMs: 1, EveryMutations: 1, Keep: 1}})
	require.NoError(t, err)

	appendRows := func(id string, csv string) *teatreev1.RequestStatus {
		t.Helper()
		res, err := c.Append(ctx, model, "orders", strings.NewReader(csv), "text/csv", nil, client.MutateOptions{RequestID: id, Wait: true})
		require.NoError(t, err)
		require.NotNil(t, res.Status, "waited for %s", id)
		require.Equal(t, subject.StatusApplied, res.Status.GetStatus(), "%s: %v\n%s", id, res.Status, st.logs)
		return res.Status
	}
	// latest waits for a visible version that contains seq.
	latest := func(seq uint64) *teatreev1.Manifest {
		t.Helper()
		var m *teatreev1.Manifest
		require.Eventually(t, func() bool {
			list, err := c.Snapshots(ctx, model)
			if err != nil || len(list.GetSnapshots()) == 0 {
				return false
			}
			m = list.GetSnapshots()[0]
			return m.GetAppliedSeq() >= seq
		}, time.Minute, 20*time.Millisecond, "a version with seq %d; logs:\n%s", seq, st.logs)
		return m
	}
	versionDirs := func() []uint64 {
		t.Helper()
		names, err := store.List(ctx, blob.ModelPrefix(model))
		require.NoError(t, err)
		var vs []uint64
		for _, n := range names {
			if v, ok := blob.ParseVersionDir(n); ok {
				vs = append(vs, v)
			}
		}
		return vs
	}

	first := latest(appendRows("r1", "id,amount\n1,9.5\n2,3\n").GetSeq())
	pin, err := c.Pin(ctx, model, strconv.FormatUint(first.GetVersion(), 10))
	require.NoError(t, err)
	second := latest(appendRows("r2", "id,amount\n3,1\n").GetSeq())
	require.Greater(t, second.GetVersion(), first.GetVersion())

	// A body larger than a NATS message goes up to uploads/<model>/<id>.
	var big bytes.Buffer
	big.WriteString("id,amount\n")
	for i := 10; big.Len() < 3<<20; i++ {
		fmt.Fprintf(&big, "%d,%d.25\n", i, i)
	}
	bigStatus := appendRows("big", big.String())
	raw, err := st.mut.GetMsg(ctx, bigStatus.GetSeq())
	require.NoError(t, err)
	require.Equal(t, blob.UploadKey(model, "big"), raw.Header.Get(subject.HeaderBodyRef), "the large body went by reference")
	require.Empty(t, raw.Data)
	last := latest(bigStatus.GetSeq())

	// Collected: every version but the newest (keep 1) and the pinned one.
	require.Eventually(t, func() bool {
		dirs := versionDirs()
		return !slices.Contains(dirs, second.GetVersion()) && slices.Contains(dirs, first.GetVersion())
	}, time.Minute, 20*time.Millisecond, "versions in the bucket: %v; logs:\n%s", versionDirs(), st.logs)
	require.Contains(t, versionDirs(), last.GetVersion())
	// The upload is gone once applied.
	require.Eventually(t, func() bool {
		names, err := store.List(ctx, blob.UploadPrefix(model))
		return err == nil && len(names) == 0
	}, time.Minute, 20*time.Millisecond, "uploads left; logs:\n%s", st.logs)

	// The pinned version still downloads; once unpinned it is collected.
	resp, err := c.Download(ctx, model, strconv.FormatUint(first.GetVersion(), 10), blob.DuckDBFile)
	require.NoError(t, err)
	checkSum(t, resp, first.GetDuckdb())
	require.NoError(t, c.Unpin(ctx, pin))
	appendRows("r3", "id,amount\n4,2\n")
	require.Eventually(t, func() bool { return !slices.Contains(versionDirs(), first.GetVersion()) },
		time.Minute, 20*time.Millisecond, "versions in the bucket: %v; logs:\n%s", versionDirs(), st.logs)

	// Pull as `teatree pull` does: pin, manifest, files checked by SHA-256.
	pin, err = c.Pin(ctx, model, "latest")
	require.NoError(t, err)
	defer c.Unpin(ctx, pin)
	v := strconv.FormatUint(pin.GetVersion(), 10)
	resp, err = c.Download(ctx, model, v, blob.ManifestFile)
	require.NoError(t, err)
	resp.Body.Close()
	list, err := c.Snapshots(ctx, model)
	require.NoError(t, err)
	var man *teatreev1.Manifest
	for _, m := range list.GetSnapshots() {
		if m.GetVersion() == pin.GetVersion() {
			man = m
		}
	}
	require.NotNil(t, man, "pinned version %s listed", v)
	resp, err = c.Download(ctx, model, v, blob.DuckDBFile)
	require.NoError(t, err)
	require.Equal(t, `"`+man.GetDuckdb().GetSha256()+`"`, resp.Header.Get("ETag"))
	whole := checkSum(t, resp, man.GetDuckdb())
	for _, tbl := range man.GetTables() {
		resp, err := c.Download(ctx, model, v, tbl.GetParquet().GetPath())
		require.NoError(t, err)
		checkSum(t, resp, tbl.GetParquet())
	}

	// A query executor reads the version from the bucket.
	page, err := c.Query(ctx, model, &teatreev1.Query{Sql: "select count(*) as n from orders", Format: "csv", Version: pin.GetVersion()})
	require.NoError(t, err)
	require.Equal(t, pin.GetVersion(), page.Version)
	require.Equal(t, fmt.Sprintf("n\n%d\n", man.GetTables()[0].GetRows()), string(page.Body))

	// Range and If-None-Match, answered from S3.
	url := st.HTTPURL + "/v1/models/" + model + "/snapshots/" + v + "/" + blob.DuckDBFile
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("Range", "bytes=100-4195")
	r, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	part, err := io.ReadAll(r.Body)
	r.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusPartialContent, r.StatusCode)
	require.Equal(t, fmt.Sprintf("bytes 100-4195/%d", len(whole)), r.Header.Get("Content-Range"))
	require.True(t, bytes.Equal(whole[100:4196], part), "the range's bytes")
	req, err = http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	req.Header.Set("If-None-Match", `"`+man.GetDuckdb().GetSha256()+`"`)
	r, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	r.Body.Close()
	require.Equal(t, http.StatusNotModified, r.StatusCode)
}

// checkSum reads a download whole and checks it against its manifest entry.
func checkSum(t *testing.T, resp *http.Response, ref *teatreev1.FileRef) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.EqualValues(t, ref.GetBytes(), len(b), ref.GetPath())
	sum := sha256.Sum256(b)
	require.Equal(t, ref.GetSha256(), hex.EncodeToString(sum[:]), ref.GetPath())
	return b
}
