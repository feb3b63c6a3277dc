package dbmanager_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func refRows(id, ref string) mutation {
	return mutation{op: subject.OpAppend, id: id, table: "t", contentType: subject.ContentCSV, bodyRef: ref}
}

// A body too large for a message is read from the blob store, from the
// model's uploads only, and deleted once its request is applied.
func TestBodyByReference(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	h.createModel(t, &teatreev1.ModelSpec{Id: "other"})
	outcomes := h.watchOutcomes(t, "m")
	run := h.start(t, l, t.TempDir())
	ctx := testContext(t)

	upload := blob.UploadKey("m", "big")
	_, err := h.blobs.Put(ctx, upload, bytes.NewReader([]byte("n,s\n1,a\n2,b\n3,c\n")))
	require.NoError(t, err)
	// Blobs a hostile reference might name: they must survive.
	kept := []string{blob.UploadKey("other", "theirs"), blob.UploadKey("m", "kept")}
	for _, k := range kept {
		_, err := h.blobs.Put(ctx, k, bytes.NewReader([]byte("n,s\n9,z\n")))
		require.NoError(t, err)
	}
	first := h.publish(t, "m", refRows("big", upload))
	got := outcomes.await(t, "big")
	requireApplied(t, got["big"], 3)
	// The upload is dropped after the commit and before the outcome.
	_, err = h.blobs.Get(ctx, upload)
	require.True(t, errors.Is(err, blob.ErrNotFound), "upload deleted: %v", err)
	snap := h.awaitVersion(t, "m", first.Sequence)

	h.publish(t, "m", refRows("other-model", blob.UploadKey("other", "theirs")))
	h.publish(t, "m", refRows("snapshots", blob.ModelPrefix("m")))
	h.publish(t, "m", refRows("everything", "uploads"))
	h.publish(t, "m", refRows("escape", blob.UploadPrefix("m")+"/../other/theirs"))
	h.publish(t, "m", refRows("nested", blob.UploadPrefix("m")+"/kept/x"))
	h.publish(t, "m", refRows("anothers", blob.UploadKey("m", "kept")))
	h.publish(t, "m", refRows("missing", blob.UploadKey("m", "missing")))
	h.publish(t, "m", csvRows("t", "after", "n,s\n4,d\n"))
	// Any op's body may be uploaded: the gateway uploads large sql bodies.
	sqlUpload := blob.UploadKey("m", "big-sql")
	_, err = h.blobs.Put(ctx, sqlUpload, bytes.NewReader([]byte(`{"sql": "INSERT INTO t VALUES ($1, $2)", "params": [5, "e"]}`)))
	require.NoError(t, err)
	h.publish(t, "m", mutation{op: subject.OpSQL, id: "big-sql", contentType: subject.ContentJSON, bodyRef: sqlUpload})
	got = outcomes.await(t, "other-model", "snapshots", "everything", "escape", "nested", "anothers", "missing", "after", "big-sql")
	for _, id := range []string{"other-model", "snapshots", "everything", "escape", "nested", "anothers"} {
		requireFailed(t, got[id], "invalid_argument")
	}
	requireFailed(t, got["missing"], "not_found")
	requireApplied(t, got["after"], 1)
	requireApplied(t, got["big-sql"], 1)
	_, err = h.blobs.Get(ctx, sqlUpload)
	require.True(t, errors.Is(err, blob.ErrNotFound), "upload deleted: %v", err)
	stopped, err := run.stopped()
	require.False(t, stopped, "a bad reference stopped the db-manager: %v", err)

	for _, k := range append(kept, blob.Key("m", snap.GetVersion(), blob.ManifestFile)) {
		_, err := h.blobs.Get(ctx, k)
		require.NoError(t, err, "%s must not be deleted by a reference outside the request's upload", k)
	}
	run.stop(t)
	db := openCopy(t, localFile(run.dir))
	require.Equal(t, []string{"1|a", "2|b", "3|c", "4|d", "5|e"}, queryStrings(t, db, "SELECT * FROM t ORDER BY n"))
}
