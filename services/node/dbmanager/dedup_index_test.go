package dbmanager

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// The duplicate check of a batch looks its request ids up in the index on
// _tt_requests.request_id instead of scanning every recent request.
func TestSeenQueryUsesTheIndex(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := openStore(ctx, filepath.Join(dir, "model.duckdb"), storeDirs{spool: filepath.Join(dir, "spool"), staging: filepath.Join(dir, "staging")}, "", 1)
	require.NoError(t, err)
	defer st.close()
	_, err = st.conn.ExecContext(ctx, `INSERT INTO _tt_requests (request_id, seq, op, status, applied_at)
		SELECT 'm.r' || i, i, 'append', 'applied', now() FROM range(10000) t(i)`)
	require.NoError(t, err)
	ids := []string{"m.r1", "m.x", "m.r2"}
	var key, plan string
	require.NoError(t, st.conn.QueryRowContext(ctx, "EXPLAIN ANALYZE "+seenQuery, ids).Scan(&key, &plan))
	require.Contains(t, plan, "Index Scan", plan)
	rows, err := st.conn.QueryContext(ctx, seenQuery, ids)
	require.NoError(t, err)
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	require.Equal(t, 2, n)
}
