package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/duckdb/duckdb-go/v2"
	"github.com/stretchr/testify/require"
)

// arrowBody encodes rows (id, name) as an Arrow IPC stream.
func arrowBody(t *testing.T, ids []int64, names []string) []byte {
	t.Helper()
	schema := arrow.NewSchema([]arrow.Field{{Name: "id", Type: arrow.PrimitiveTypes.Int64}, {Name: "name", Type: arrow.BinaryTypes.String}}, nil)
	b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer b.Release()
	b.Field(0).(*array.Int64Builder).AppendValues(ids, nil)
	b.Field(1).(*array.StringBuilder).AppendValues(names, nil)
	rec := b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(schema))
	require.NoError(t, w.Write(rec))
	require.NoError(t, w.Close())
	return buf.Bytes()
}

// parquetBody writes rows with DuckDB, as any Parquet producer would.
func parquetBody(t *testing.T, query string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rows.parquet")
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec(fmt.Sprintf("COPY (%s) TO '%s' (FORMAT parquet)", query, path))
	require.NoError(t, err)
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func openReadOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	c, err := duckdb.NewConnector(path+"?access_mode=read_only", nil)
	require.NoError(t, err)
	db := sql.OpenDB(c)
	t.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	nc, js := s.connect(t)
	createModel(t, s, `{"id":"sales","snapshot":{"interval_ms":200}}`)

	// Notifications arrive on tt.ntf.sales.req.<id> for live subscribers too.
	live, err := nc.SubscribeSync("tt.ntf.sales.req.>")
	require.NoError(t, err)

	// Every format of append, published straight to the contract's subjects.
	appends := []struct {
		id, contentType string
		body            []byte
		rows            int64
	}{
		{"csv-1", "text/csv", []byte("id,name\n1,a\n2,b\n"), 2},
		{"ndjson-1", "application/x-ndjson", []byte("{\"id\":3,\"name\":\"c\"}\n{\"id\":4,\"name\":\"d\"}\n"), 2},
		{"json-1", "application/json", []byte(`[{"id":5,"name":"e"}]`), 1},
		{"arrow-1", "application/vnd.apache.arrow.stream", arrowBody(t, []int64{6, 7, 8}, []string{"f", "g", "h"}), 3},
		{"parquet-1", "application/vnd.apache.parquet", parquetBody(t, "SELECT 9::BIGINT AS id, 'i' AS name"), 1},
	}
	for _, a := range appends {
		seq := publish(t, js, "tt.mut.sales.append", a.id, map[string]string{"Tt-Table": "items", "Content-Type": a.contentType}, a.body)
		st, h := waitNotification(t, js, "sales", a.id)
		require.Equal(t, "applied", st.Status, "%s: %+v", a.id, st)
		require.Equal(t, a.rows, *st.RowsAffected, a.id)
		require.Equal(t, seq, st.Seq)
		require.Equal(t, "append", st.Op)
		require.Equal(t, "sales", h.Get("Tt-Model"))
		require.Equal(t, a.id, h.Get("Tt-Request-Id"))
		require.Equal(t, "applied", h.Get("Tt-Status"))
		require.Equal(t, fmt.Sprint(seq), h.Get("Tt-Seq"))
		require.Equal(t, "1", h.Get("Tt-Page"))
		require.Equal(t, "1", h.Get("Tt-Pages"))
		require.Equal(t, "application/json", h.Get("Content-Type"))
		_, err := time.Parse(time.RFC3339Nano, st.AppliedAt)
		require.NoError(t, err)
	}
	for range appends {
		msg, err := live.NextMsg(10 * time.Second)
		require.NoError(t, err)
		require.Equal(t, "applied", msg.Header.Get("Tt-Status"))
	}

	// A missing column is NULL; upsert replaces by key; sql runs with params.
	publish(t, js, "tt.mut.sales.append", "csv-2", map[string]string{"Tt-Table": "items", "Content-Type": "text/csv"}, []byte("id\n10\n"))
	publish(t, js, "tt.mut.sales.upsert", "up-1", map[string]string{"Tt-Table": "items", "Tt-Key": "id", "Content-Type": "application/x-ndjson"},
		[]byte("{\"id\":1,\"name\":\"A\"}\n{\"id\":11,\"name\":\"k\"}\n"))
	publish(t, js, "tt.mut.sales.sql", "sql-1", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"sql":"UPDATE items SET name = upper(name) WHERE id = $1; DELETE FROM items WHERE id = $2","params":[2, 10]}`))
	for _, id := range []string{"csv-2", "up-1", "sql-1"} {
		st, _ := waitNotification(t, js, "sales", id)
		require.Equal(t, "applied", st.Status, "%s: %+v", id, st)
	}
	up, _ := waitNotification(t, js, "sales", "up-1")
	require.Equal(t, int64(2), *up.RowsAffected)

	// The same through HTTP, waiting for the terminal notification.
	code, body, _ := do(t, http.MethodPost, s.url("/v1/models/sales/tables/items/rows?wait=applied"), "text/csv", []byte("id,name\n12,l\n"))
	require.Equal(t, http.StatusOK, code, string(body))
	var st status
	require.NoError(t, json.Unmarshal(body, &st))
	require.Equal(t, "applied", st.Status)
	code, body, _ = do(t, http.MethodGet, s.url("/v1/models/sales/requests/"+st.RequestID), "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	code, body, _ = do(t, http.MethodPost, s.url("/v1/models/sales/sql?wait=applied"), "application/json", []byte(`{"sql":"select * from nosuch"}`))
	require.Equal(t, http.StatusUnprocessableEntity, code, string(body))
	require.NoError(t, json.Unmarshal(body, &st))
	requireError(t, st, "sql_error")

	// A snapshot that includes everything appears, with its notification.
	want := map[int64]string{1: "A", 2: "B", 3: "c", 4: "d", 5: "e", 6: "f", 7: "g", 8: "h", 9: "i", 11: "k", 12: "l"}
	lastSeq := st.Seq
	var manifest struct {
		Version    uint64 `json:"version"`
		AppliedSeq uint64 `json:"applied_seq"`
		Duckdb     struct {
			Path   string `json:"path"`
			Bytes  int64  `json:"bytes"`
			Sha256 string `json:"sha256"`
		} `json:"duckdb"`
		Tables []struct {
			Name    string `json:"name"`
			Rows    int64  `json:"rows"`
			Parquet struct {
				Sha256 string `json:"sha256"`
			} `json:"parquet"`
		} `json:"tables"`
	}
	ntf, err := js.Stream(context.Background(), "TT_NTF")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		msg, err := ntf.GetLastMsgForSubject(context.Background(), "tt.ntf.sales.snap.*")
		if err != nil {
			return false
		}
		require.NoError(t, json.Unmarshal(msg.Data, &manifest))
		return manifest.AppliedSeq >= lastSeq
	}, 30*time.Second, 50*time.Millisecond)
	require.Len(t, manifest.Tables, 1)
	require.Equal(t, "items", manifest.Tables[0].Name)
	require.Equal(t, int64(len(want)), manifest.Tables[0].Rows)

	code, body, _ = do(t, http.MethodGet, s.url("/v1/models/sales/snapshots"), "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	require.Contains(t, string(body), fmt.Sprintf(`"applied_seq":%d`, manifest.AppliedSeq))

	// Download the DuckDB file: whole, by range, and conditionally.
	fileURL := s.url(fmt.Sprintf("/v1/models/sales/snapshots/%d/model.duckdb", manifest.Version))
	code, file, hdr := do(t, http.MethodGet, fileURL, "", nil)
	require.Equal(t, http.StatusOK, code)
	sum := sha256.Sum256(file)
	require.Equal(t, manifest.Duckdb.Sha256, hex.EncodeToString(sum[:]))
	require.Equal(t, manifest.Duckdb.Bytes, int64(len(file)))
	etag := hdr.Get("ETag")
	require.NotEmpty(t, etag)
	req, _ := http.NewRequest(http.MethodGet, fileURL, nil)
	req.Header.Set("Range", "bytes=100-199")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	part := make([]byte, 200)
	n, _ := resp.Body.Read(part)
	resp.Body.Close()
	require.Equal(t, http.StatusPartialContent, resp.StatusCode)
	require.Equal(t, file[100:100+n], part[:n])
	req, _ = http.NewRequest(http.MethodGet, fileURL, nil)
	req.Header.Set("If-None-Match", etag)
	resp, err = http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotModified, resp.StatusCode)

	// The file opens read-only in a separate DuckDB and holds the rows.
	path := filepath.Join(t.TempDir(), "model.duckdb")
	require.NoError(t, os.WriteFile(path, file, 0o644))
	got := map[int64]string{}
	rows, err := openReadOnly(t, path).Query("SELECT id, name FROM items")
	require.NoError(t, err)
	for rows.Next() {
		var id int64
		var name string
		require.NoError(t, rows.Scan(&id, &name))
		got[id] = name
	}
	require.NoError(t, rows.Close())
	require.Equal(t, want, got)

	// The Parquet file of the table holds the same rows.
	code, pq, _ := do(t, http.MethodGet, s.url("/v1/models/sales/snapshots/latest/items.parquet"), "", nil)
	require.Equal(t, http.StatusOK, code)
	pqSum := sha256.Sum256(pq)
	require.Equal(t, manifest.Tables[0].Parquet.Sha256, hex.EncodeToString(pqSum[:]))
	pqPath := filepath.Join(t.TempDir(), "items.parquet")
	require.NoError(t, os.WriteFile(pqPath, pq, 0o644))
	db, err := sql.Open("duckdb", "")
	require.NoError(t, err)
	defer db.Close()
	var count int64
	require.NoError(t, db.QueryRow(fmt.Sprintf("SELECT count(*) FROM '%s'", pqPath)).Scan(&count))
	require.Equal(t, int64(len(want)), count)

	// SIGTERM stops every service cleanly.
	s.stopCleanly()
}
