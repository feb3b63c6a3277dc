package query

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestHardenedSettings opens a version as the executor does and checks the
// settings from inside; a query may not read them (see leaks_test.go).
func TestHardenedSettings(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "model.duckdb")
	rw, err := sql.Open("duckdb", path)
	require.NoError(t, err)
	_, err = rw.Exec("CREATE TABLE t AS SELECT 1 AS i")
	require.NoError(t, err)
	require.NoError(t, rw.Close())

	db, err := openHardened(context.Background(), path, Config{}.WithDefaults())
	require.NoError(t, err)
	t.Cleanup(func() { db.Close() })
	var ext, locked, autoload, community, secrets bool
	err = db.QueryRow("select current_setting('enable_external_access'), current_setting('lock_configuration'), current_setting('autoload_known_extensions'), current_setting('allow_community_extensions'), current_setting('allow_persistent_secrets')").
		Scan(&ext, &locked, &autoload, &community, &secrets)
	require.NoError(t, err)
	require.Equal(t, []bool{false, true, false, false, false}, []bool{ext, locked, autoload, community, secrets})
}
