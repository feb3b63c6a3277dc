package catalogwatch_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/auth/catalogwatch"
	"github.com/teatree-dev/teatree/pkg/natsboot/natstest"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// The catalog starts with what the buckets hold and follows their
// changes; a change that leaves it the same, such as a SQL function, is
// not told.
func TestCatalogFollowsTheBuckets(t *testing.T) {
	t.Parallel()
	env := natstest.Start(t)
	names := subject.Default()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	functions, err := env.JS.KeyValue(ctx, names.FunctionsBucket())
	require.NoError(t, err)
	_, err = env.Models.Put(ctx, "sales", []byte("{}"))
	require.NoError(t, err)

	changes := make(chan auth.Catalog, 16)
	follow, err := catalogwatch.Start(ctx, names, env.Models, functions, func(c auth.Catalog) { changes <- c })
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- follow() }()
	t.Cleanup(func() { cancel(); require.NoError(t, <-done) })
	next := func() auth.Catalog {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(30 * time.Second):
			t.Fatal("no change of the catalog told")
			return auth.Catalog{}
		}
	}
	require.Equal(t, auth.Catalog{Models: []string{"sales"}}, next())

	_, err = env.Models.Put(ctx, "hr", []byte("{}"))
	require.NoError(t, err)
	require.Equal(t, auth.Catalog{Models: []string{"hr", "sales"}}, next())
	_, err = functions.Put(ctx, "sales.total", []byte(`{"kind":"sql","sql":"select 1"}`))
	require.NoError(t, err)
	_, err = functions.Put(ctx, "sales.describe", []byte(`{"kind":"compute","handler":"describe","capabilities":["go","gpu"]}`))
	require.NoError(t, err)
	require.Equal(t, auth.Catalog{Models: []string{"hr", "sales"}, Routes: []string{"describe@go+gpu"}}, next(), "the SQL function changed nothing")
	require.NoError(t, env.Models.Delete(ctx, "hr"))
	require.Equal(t, auth.Catalog{Models: []string{"sales"}, Routes: []string{"describe@go+gpu"}}, next())
	require.NoError(t, functions.Delete(ctx, "sales.describe"))
	require.Equal(t, auth.Catalog{Models: []string{"sales"}}, next())
}
