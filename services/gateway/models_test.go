package gateway

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func TestCreateModel(t *testing.T) {
	t.Parallel()
	env := start(t)

	r := env.send(t, http.MethodPost, "/v1/models", []byte(`{"id":"sales","snapshot":{"keep":5}}`))
	require.Equal(t, http.StatusCreated, r.status, "body %s", r.body)
	var spec teatreev1.ModelSpec
	require.NoError(t, wire.Unmarshal(r.body, &spec))
	require.Equal(t, "sales", spec.GetId())
	require.Equal(t, []string{"duckdb"}, spec.GetCapabilities())
	require.EqualValues(t, 5, spec.GetSnapshot().GetKeep())
	require.NotEmpty(t, spec.GetCreatedAt())
	require.Zero(t, spec.GetCreatedSeq(), "TT_MUT is empty")

	stored, _, err := catalog.GetModel(context.Background(), env.models, "sales")
	require.NoError(t, err)
	require.Equal(t, spec.GetCreatedAt(), stored.GetCreatedAt())

	r = env.send(t, http.MethodPost, "/v1/models", []byte(`{"id":"sales"}`))
	requireError(t, r, http.StatusBadRequest, "invalid_argument")

	for _, body := range []string{`{"id":"Sales"}`, `{"id":"a.b"}`, `{"id":""}`, `not json`, `{"id":"ok","capabilities":["GPU"]}`} {
		r = env.send(t, http.MethodPost, "/v1/models", []byte(body))
		requireError(t, r, http.StatusBadRequest, "invalid_argument")
	}
}

func TestListAndGetModels(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)

	r := env.send(t, http.MethodGet, "/v1/models", nil)
	require.Equal(t, http.StatusOK, r.status)
	require.JSONEq(t, `{}`, string(r.body), "no models yet")

	env.createModel(t, "sales")
	env.createModel(t, "crm")
	epoch, _, err := catalog.Grant(ctx, env.owners, "sales", "node-1")
	require.NoError(t, err)
	for range 3 {
		_, err := env.nats.JS.Publish(ctx, env.names.Mut("sales", "sql"), []byte(`{"sql":"select 1"}`))
		require.NoError(t, err)
	}
	_, err = env.nats.JS.Publish(ctx, env.names.Mut("crm", "sql"), []byte(`{"sql":"select 1"}`))
	require.NoError(t, err)
	setAppliedSeq(t, env, "sales", 1)

	r = env.send(t, http.MethodGet, "/v1/models", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var list teatreev1.ModelList
	require.NoError(t, wire.Unmarshal(r.body, &list))
	require.Len(t, list.GetModels(), 2)
	crm, sales := list.GetModels()[0], list.GetModels()[1]
	require.Equal(t, "crm", crm.GetSpec().GetId())
	require.Empty(t, crm.GetOwner())
	require.Equal(t, "idle", crm.GetState())
	require.EqualValues(t, 4, crm.GetLastSeq())
	require.EqualValues(t, 4, crm.GetLag())
	require.Equal(t, "sales", sales.GetSpec().GetId())
	require.Equal(t, "node-1", sales.GetOwner())
	require.Equal(t, "running", sales.GetState())
	require.Equal(t, epoch, sales.GetLeaseEpoch())
	require.EqualValues(t, 3, sales.GetLastSeq())
	require.EqualValues(t, 2, sales.GetLag())

	r = env.send(t, http.MethodGet, "/v1/models/sales", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	var info teatreev1.ModelInfo
	require.NoError(t, wire.Unmarshal(r.body, &info))
	require.Equal(t, "node-1", info.GetOwner())
	require.EqualValues(t, 3, info.GetLastSeq())
	require.Contains(t, string(r.body), `"last_seq":3`, "64-bit integers are JSON numbers")

	// A node gave crm up: it is failing, and says why.
	since := time.Now()
	require.NoError(t, catalog.RecordStartFailure(ctx, env.models, "crm", "node-2", 1, since, 3, errors.New("bad file"), 4))
	r = env.send(t, http.MethodGet, "/v1/models/crm", nil)
	require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
	info.Reset()
	require.NoError(t, wire.Unmarshal(r.body, &info))
	require.Equal(t, "failing", info.GetState())
	require.Equal(t, "node-2", info.GetStartError().GetNode())
	require.Equal(t, "bad file", info.GetStartError().GetMessage())
	require.Equal(t, since.UTC().Format(time.RFC3339Nano), info.GetStartError().GetSince())
	require.EqualValues(t, 3, info.GetStartError().GetAttempts())
	require.Contains(t, string(r.body), `"start_error":{`)

	requireError(t, env.send(t, http.MethodGet, "/v1/models/nope", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodGet, "/v1/models/No", nil), http.StatusBadRequest, "invalid_argument")
}

func TestDeleteModel(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	env := start(t)
	env.createModel(t, "sales")
	env.createModel(t, "crm")
	_, _, err := catalog.Grant(ctx, env.owners, "sales", "node-1")
	require.NoError(t, err)
	_, err = env.nats.JS.Publish(ctx, env.names.Mut("sales", "sql"), []byte(`{"sql":"select 1"}`))
	require.NoError(t, err)
	_, err = env.nats.JS.Publish(ctx, env.names.Mut("crm", "sql"), []byte(`{"sql":"select 1"}`))
	require.NoError(t, err)
	_, err = env.blobs.Put(ctx, blob.Key("sales", 1, blob.DuckDBFile), bytes.NewReader([]byte("db")))
	require.NoError(t, err)
	_, err = env.blobs.Put(ctx, blob.UploadKey("sales", "r1"), bytes.NewReader([]byte("rows")))
	require.NoError(t, err)

	r := env.send(t, http.MethodDelete, "/v1/models/sales", nil)
	require.Equal(t, http.StatusNoContent, r.status, "body %s", r.body)

	requireError(t, env.send(t, http.MethodGet, "/v1/models/sales", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodDelete, "/v1/models/sales", nil), http.StatusNotFound, "not_found")
	_, err = env.mut.GetLastMsgForSubject(ctx, env.names.MutModel("sales"))
	require.ErrorIs(t, err, jetstream.ErrMsgNotFound, "the model's mutations are purged")
	_, err = env.mut.GetLastMsgForSubject(ctx, env.names.MutModel("crm"))
	require.NoError(t, err, "other models keep theirs")
	lease, _, err := catalog.GetLease(ctx, env.owners, "sales")
	require.NoError(t, err)
	require.Nil(t, lease)
	_, err = env.blobs.Get(ctx, blob.Key("sales", 1, blob.DuckDBFile))
	require.True(t, errors.Is(err, blob.ErrNotFound))
	_, err = env.blobs.Get(ctx, blob.UploadKey("sales", "r1"))
	require.True(t, errors.Is(err, blob.ErrNotFound))

	env.createModel(t, "sales") // the id is free again
}

// setAppliedSeq plays the db-manager publishing a version up to seq.
func setAppliedSeq(t *testing.T, env *testEnv, model string, seq uint64) {
	t.Helper()
	ctx := context.Background()
	spec, rev, err := catalog.GetModel(ctx, env.models, model)
	require.NoError(t, err)
	spec.Version++
	spec.AppliedSeq = seq
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = env.models.Update(ctx, model, b, rev)
	require.NoError(t, err)
}

// setVersion names version as the model's newest in the catalog.
func setVersion(t *testing.T, env *testEnv, model string, version uint64) {
	t.Helper()
	ctx := context.Background()
	spec, rev, err := catalog.GetModel(ctx, env.models, model)
	require.NoError(t, err)
	spec.Version = version
	b, err := wire.Marshal(spec)
	require.NoError(t, err)
	_, err = env.models.Update(ctx, model, b, rev)
	require.NoError(t, err)
}
