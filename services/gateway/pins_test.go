package gateway

import (
	"context"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

func TestPins(t *testing.T) {
	t.Parallel()
	env := start(t)
	env.createModel(t, "sales")
	putVersion(t, env, "sales", 1, true)
	putVersion(t, env, "sales", 2, true)
	setVersion(t, env, "sales", 2)
	pinned := func(v uint64) bool {
		p, err := catalog.Pinned(context.Background(), env.pins, "sales", v)
		require.NoError(t, err)
		return p
	}

	r := env.send(t, http.MethodPost, "/v1/models/sales/snapshots/latest/pins", nil)
	require.Equal(t, http.StatusCreated, r.status, "body %s", r.body)
	var pin teatreev1.VersionPin
	require.NoError(t, wire.Unmarshal(r.body, &pin))
	require.Equal(t, uint64(2), pin.GetVersion())
	require.NotEmpty(t, pin.GetPinId())
	require.Positive(t, pin.GetTtlMs())
	require.True(t, pinned(2))
	require.False(t, pinned(1))

	path := "/v1/models/sales/snapshots/2/pins/" + pin.GetPinId()
	require.Equal(t, http.StatusNoContent, env.send(t, http.MethodPut, path, nil).status)
	require.Equal(t, http.StatusNoContent, env.send(t, http.MethodDelete, path, nil).status)
	require.False(t, pinned(2))
	requireError(t, env.send(t, http.MethodPut, path, nil), http.StatusNotFound, "not_found")

	requireError(t, env.send(t, http.MethodPost, "/v1/models/sales/snapshots/3/pins", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodPost, "/v1/models/nope/snapshots/1/pins", nil), http.StatusNotFound, "not_found")
	requireError(t, env.send(t, http.MethodPost, "/v1/models/sales/snapshots/x/pins", nil), http.StatusBadRequest, "invalid_argument")
}
