package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
)

const bigRows = 1_000_000

// pageNumbers decodes the column i of one result page in any format.
func pageNumbers(t *testing.T, format string, page []byte) []int64 {
	t.Helper()
	var out []int64
	switch format {
	case "json":
		var rows []struct{ I int64 }
		require.NoError(t, json.Unmarshal(page, &rows))
		for _, r := range rows {
			out = append(out, r.I)
		}
	case "ndjson":
		dec := json.NewDecoder(bytes.NewReader(page))
		for {
			var r struct{ I int64 }
			if err := dec.Decode(&r); err == io.EOF {
				break
			} else {
				require.NoError(t, err)
			}
			out = append(out, r.I)
		}
	case "csv":
		recs, err := csv.NewReader(bytes.NewReader(page)).ReadAll()
		require.NoError(t, err)
		require.Equal(t, []string{"i"}, recs[0])
		for _, r := range recs[1:] {
			n, err := strconv.ParseInt(r[0], 10, 64)
			require.NoError(t, err)
			out = append(out, n)
		}
	case "arrow":
		rd, err := ipc.NewReader(bytes.NewReader(page))
		require.NoError(t, err)
		defer rd.Release()
		for rd.Next() {
			out = append(out, rd.RecordBatch().Column(0).(*array.Int64).Int64Values()...)
		}
		require.NoError(t, rd.Err())
	}
	return out
}

// requireAllNumbers checks a reassembled result is exactly 0..n-1 in order.
func requireAllNumbers(t *testing.T, got []int64, n int) {
	t.Helper()
	require.Len(t, got, n)
	for i, v := range got {
		if v != int64(i) {
			require.Equal(t, int64(i), v, "row %d", i)
		}
	}
}

// bigModel makes a model whose table big holds i in [0, bigRows), and
// returns the seq of the mutation that made it.
func bigModel(t *testing.T, s *server, js jetstream.JetStream) uint64 {
	t.Helper()
	createModel(t, s, `{"id":"big","snapshot":{"interval_ms":100}}`)
	seq := publish(t, js, "tt.mut.big.sql", "make-big", map[string]string{"Content-Type": "application/json"},
		[]byte(fmt.Sprintf(`{"sql":"create table big as select i::BIGINT as i from range(%d) r(i)"}`, bigRows)))
	st, _ := waitNotification(t, js, "big", "make-big")
	require.Equal(t, "applied", st.Status, "%+v", st)
	return seq
}

func TestDirectQueriesLargeResult(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	seq := bigModel(t, s, js)
	for _, format := range []string{"json", "ndjson", "csv", "arrow"} {
		body := fmt.Sprintf(`{"sql":"select i from big order by i","format":%q,"page_rows":10000,"min_seq":%d}`, format, seq)
		code, first, hdr := do(t, http.MethodPost, s.url("/v1/models/big/query"), "application/json", []byte(body))
		require.Equal(t, http.StatusOK, code, "%s: %s", format, first)
		require.Equal(t, "100", hdr.Get("Tt-Pages"), format)
		require.Equal(t, strconv.Itoa(bigRows), hdr.Get("Tt-Rows"), format)
		id := hdr.Get("Tt-Result-Id")
		require.NotEmpty(t, id)
		got := pageNumbers(t, format, first)
		require.Len(t, got, 10_000)
		for page := 2; page <= 100; page++ {
			code, b, h := do(t, http.MethodGet, s.url(fmt.Sprintf("/v1/models/big/query?result=%s&page=%d", id, page)), "", nil)
			require.Equal(t, http.StatusOK, code, "%s page %d: %s", format, page, b)
			require.Equal(t, strconv.Itoa(page), h.Get("Tt-Page"))
			got = append(got, pageNumbers(t, format, b)...)
		}
		requireAllNumbers(t, got, bigRows)
	}
}

func TestDurableQueriesLargeResult(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	seq := bigModel(t, s, js)
	for _, format := range []string{"json", "ndjson", "csv", "arrow"} {
		id := "durable-" + format
		publish(t, js, "tt.call.duckdb.big", id, nil,
			[]byte(fmt.Sprintf(`{"sql":"select i from big order by i","format":%q,"page_rows":10000,"min_seq":%d}`, format, seq)))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cons, err := js.OrderedConsumer(ctx, "TT_NTF", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"tt.ntf.big.req." + id}})
		require.NoError(t, err)
		var got []int64
		for page := 1; ; page++ {
			msg, err := cons.Next(jetstream.FetchMaxWait(time.Minute))
			require.NoError(t, err, "%s page %d", format, page)
			h := msg.Headers()
			require.Equal(t, "result", h.Get("Tt-Status"), "%s: %s", format, msg.Data())
			require.Equal(t, strconv.Itoa(page), h.Get("Tt-Page"))
			got = append(got, pageNumbers(t, format, msg.Data())...)
			if h.Get("Tt-Page") == h.Get("Tt-Pages") {
				require.Equal(t, "100", h.Get("Tt-Pages"))
				break
			}
		}
		cancel()
		requireAllNumbers(t, got, bigRows)
	}
}

// TestReadYourWrites: a query with the seq from a mutation's ack sees it.
func TestReadYourWrites(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	createModel(t, s, `{"id":"ryw"}`)
	for i := range 100 {
		seq := publish(t, js, "tt.mut.ryw.append", fmt.Sprintf("w%d", i),
			map[string]string{"Tt-Table": "t", "Content-Type": "application/x-ndjson"}, fmt.Appendf(nil, "{\"n\":%d}\n", i))
		body := fmt.Sprintf(`{"sql":"select count(*) as c, max(n) as m from t","min_seq":%d}`, seq)
		code, b, hdr := do(t, http.MethodPost, s.url("/v1/models/ryw/query"), "application/json", []byte(body))
		require.Equal(t, http.StatusOK, code, string(b))
		require.JSONEq(t, fmt.Sprintf(`[{"c":%d,"m":%d}]`, i+1, i), string(b), "pair %d, version %s", i, hdr.Get("Tt-Version"))
	}
}

// TestLateSubscriber: a subscriber that starts after 500 notifications
// reads them all from TT_NTF, then the live ones, none twice, none missing.
func TestLateSubscriber(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	createModel(t, s, `{"id":"late"}`)
	mutate := func(i int) {
		msg := nats.NewMsg("tt.mut.late.append")
		msg.Header.Set("Nats-Msg-Id", fmt.Sprintf("l%d", i))
		msg.Header.Set("Tt-Table", "t")
		msg.Header.Set("Content-Type", "application/x-ndjson")
		msg.Data = fmt.Appendf(nil, "{\"n\":%d}\n", i)
		_, err := js.PublishMsgAsync(msg)
		require.NoError(t, err)
	}
	for i := range 500 {
		mutate(i)
	}
	<-js.PublishAsyncComplete()
	waitNotification(t, js, "late", "l499")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "TT_NTF", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"tt.ntf.late.req.>"}})
	require.NoError(t, err)
	seen := map[string]bool{}
	read := func(n int) {
		for range n {
			msg, err := cons.Next(jetstream.FetchMaxWait(30 * time.Second))
			require.NoError(t, err)
			id := msg.Headers().Get("Tt-Request-Id")
			require.False(t, seen[id], "%s twice", id)
			seen[id] = true
		}
	}
	read(500)
	for i := 500; i < 600; i++ {
		mutate(i)
	}
	read(100)
	for i := range 600 {
		require.True(t, seen[fmt.Sprintf("l%d", i)], "l%d missing", i)
	}
	_, err = cons.Next(jetstream.FetchMaxWait(500 * time.Millisecond))
	require.Error(t, err, "nothing more than the 600")
}

// TestHostileQueriesOverHTTP: the read path refuses ways out, and reads of
// the server under the model, with the contract's codes, names none of the
// server's paths, and keeps answering.
func TestHostileQueriesOverHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	_, js := s.connect(t)
	createModel(t, s, `{"id":"h"}`)
	seq := publish(t, js, "tt.mut.h.append", "h1", map[string]string{"Tt-Table": "t", "Content-Type": "text/csv"}, []byte("x\n1\n"))
	for _, c := range []struct{ sql, code string }{
		{"select * from read_csv('/etc/passwd')", "permission_denied"},
		{"copy t to '/tmp/x.csv'", "permission_denied"},
		{"attach '/tmp/x.duckdb'", "permission_denied"},
		{"install httpfs", "permission_denied"},
		{"set threads = 1", "permission_denied"},
		{"delete from t", "permission_denied"},
		{"select 1; select 2", "invalid_argument"},
		// The server under the model: its paths, settings and databases.
		{"pragma database_list", "permission_denied"},
		{"select current_setting('temp_directory')", "permission_denied"},
		{"from duckdb_databases()", "permission_denied"},
		{"from glob('" + s.data + "/*')", "permission_denied"},
	} {
		body, _ := json.Marshal(map[string]any{"sql": c.sql, "min_seq": seq})
		code, b, hdr := do(t, http.MethodPost, s.url("/v1/models/h/query"), "application/json", body)
		require.Equal(t, "failed", hdr.Get("Tt-Status"), c.sql)
		require.Contains(t, string(b), `"code":"`+c.code+`"`, c.sql)
		require.GreaterOrEqual(t, code, 400)
		require.NotContains(t, string(b), s.data, "an error shows no path of the server's: %s", c.sql)
		code, b, _ = do(t, http.MethodPost, s.url("/v1/models/h/query"), "application/json", []byte(`{"sql":"select count(*) as n from t"}`))
		require.Equal(t, http.StatusOK, code)
		require.JSONEq(t, `[{"n":1}]`, strings.TrimSpace(string(b)))
	}
}
