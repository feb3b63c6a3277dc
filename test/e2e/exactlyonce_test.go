package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/blob"
)

// ledger is what the clients know: the requests JetStream acknowledged,
// each carrying one uniquely numbered row.
type ledger struct {
	mu    sync.Mutex
	rows  map[string]int64  // request id -> the row's n
	seqs  map[string]uint64 // request id -> stream sequence of the ack
	acks  atomic.Int64
	next  atomic.Int64
	lost  atomic.Int64 // requests never acknowledged before the deadline
	abort atomic.Bool  // set when the test ends: publishers give up
	model string
	// setup are requests outside the numbered rows (a filler table), left
	// out of the checks but for their own notification.
	setup map[string]bool
	// conflicts are retries acknowledged with another sequence than the
	// first ack: the duplicate window failed and both copies may apply.
	conflicts []string
}

func newLedger(model string) *ledger {
	return &ledger{model: model, rows: map[string]int64{}, seqs: map[string]uint64{}, setup: map[string]bool{}}
}

func (l *ledger) ack(id string, n int64, seq uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.seqs[id]; ok {
		if old != seq {
			l.conflicts = append(l.conflicts, fmt.Sprintf("%s acked as seq %d and %d", id, old, seq))
		}
		return
	}
	l.acks.Add(1)
	l.rows[id], l.seqs[id] = n, seq
}

func (l *ledger) snapshot() (map[string]int64, map[string]uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rows, seqs := make(map[string]int64, len(l.rows)), make(map[string]uint64, len(l.seqs))
	for k, v := range l.rows {
		rows[k] = v
	}
	for k, v := range l.seqs {
		seqs[k] = v
	}
	return rows, seqs
}

// sender sends the request carrying row n and returns its id and the
// sequence it was acknowledged with.
type sender func(n int64) (id string, seq uint64, err error)

// natsSender publishes rows with plain nats.go, Nats-Msg-Id <model>.r-<n>.
func natsSender(js jetstream.JetStream, model string) sender {
	return func(n int64) (string, uint64, error) {
		id := fmt.Sprintf("r-%d", n)
		msg := nats.NewMsg("tt.mut." + model + ".append")
		msg.Header.Set("Nats-Msg-Id", model+"."+id)
		msg.Header.Set("Tt-Table", "numbers")
		msg.Header.Set("Content-Type", "application/x-ndjson")
		msg.Data = fmt.Appendf(nil, "{\"n\":%d}\n", n)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			return id, 0, err
		}
		return id, ack.Sequence, nil
	}
}

// callSender publishes every third row as a call of the SQL function
// add_number (see addNumberFunction) with plain nats.go, Nats-Msg-Id
// <model>.c-<n>, and the others as send does: calls are applied exactly
// once in order with the appends.
func callSender(js jetstream.JetStream, model string, send sender) sender {
	return func(n int64) (string, uint64, error) {
		if n%3 != 0 {
			return send(n)
		}
		id := fmt.Sprintf("c-%d", n)
		msg := nats.NewMsg("tt.mut." + model + ".call")
		msg.Header.Set("Nats-Msg-Id", model+"."+id)
		msg.Header.Set("Content-Type", "application/json")
		msg.Data = fmt.Appendf(nil, `{"function":"add_number","args":{"n":%d}}`, n)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		ack, err := js.PublishMsg(ctx, msg)
		if err != nil {
			return id, 0, err
		}
		return id, ack.Sequence, nil
	}
}

// addNumberFunction creates the numbers table (request "numbers", left out
// of the checks) and registers the SQL function add_number(n) that
// inserts one row into it, for callSender.
func addNumberFunction(t *testing.T, u urler, js jetstream.JetStream, l *ledger) {
	t.Helper()
	status, body, _ := do(t, http.MethodPut, u.url("/v1/models/"+l.model+"/functions/add_number"), "application/json",
		[]byte(`{"kind":"sql","sql":"INSERT INTO numbers (n) VALUES ($n)","params":[{"name":"n","type":"BIGINT","required":true}]}`))
	require.Equal(t, http.StatusOK, status, string(body))
	l.setup["numbers"] = true
	publish(t, js, "tt.mut."+l.model+".sql", l.model+".numbers", map[string]string{"Content-Type": "application/json"},
		[]byte(`{"sql":"CREATE TABLE numbers (n BIGINT)"}`))
	st, _ := waitNotification(t, js, l.model, "numbers")
	require.Equal(t, "applied", st.Status, "%+v", st)
}

// httpSender posts rows to the gateway with Idempotency-Key h-<n>. Every
// bigEvery-th body (none if 0) is padded with whitespace past NATS's
// payload limit, so that the gateway stores it as an upload in the blob
// store and the message only points at it.
func httpSender(url func(string) string, model string, bigEvery int64) sender {
	client := &http.Client{Timeout: 10 * time.Second}
	pad := bytes.Repeat([]byte(" "), 1200<<10)
	return func(n int64) (string, uint64, error) {
		id := fmt.Sprintf("h-%d", n)
		body := fmt.Appendf(nil, "{\"n\":%d}\n", n)
		if bigEvery > 0 && n%bigEvery == 0 {
			body = fmt.Appendf(nil, "{\"n\":%d%s}\n", n, pad)
		}
		req, err := http.NewRequest(http.MethodPost, url("/v1/models/"+model+"/tables/numbers/rows"), bytes.NewReader(body))
		if err != nil {
			return id, 0, err
		}
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Idempotency-Key", id)
		resp, err := client.Do(req)
		if err != nil {
			return id, 0, err
		}
		defer resp.Body.Close()
		answer, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return id, 0, fmt.Errorf("post %s: %d %s", id, resp.StatusCode, answer)
		}
		var a struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(answer, &a); err != nil {
			return id, 0, fmt.Errorf("post %s: %w: %s", id, err, answer)
		}
		return id, a.Seq, nil
	}
}

// publishers runs k clients that each take the next row number, send it
// and retry with the same id until it is acknowledged (the duplicate
// window and the model's request table make the retry safe), as long as
// gate allows and until deadline. The returned func waits for them.
func (l *ledger) publishers(t *testing.T, k int, send sender, gate func() bool, deadline time.Time) (wait func()) {
	t.Cleanup(func() { l.abort.Store(true) })
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !l.abort.Load() && gate() && time.Now().Before(deadline) {
				n := l.next.Add(1) - 1
				acked := false
				for !acked && !l.abort.Load() && time.Now().Before(deadline) {
					id, seq, err := send(n)
					if err == nil {
						l.ack(id, n, seq)
						acked = true
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
				if !acked {
					l.lost.Add(1)
				}
			}
		}()
	}
	return wg.Wait
}

// notification is one message of TT_NTF.
type notification struct {
	subject string
	header  string // Tt-Request-Id
	body    status
}

// readStatuses reads every request notification of a model in TT_NTF.
func readStatuses(t *testing.T, js jetstream.JetStream, model string) []notification {
	t.Helper()
	out, err := tryReadStatuses(t, js, model)
	require.NoError(t, err)
	return out
}

// tryReadStatuses is readStatuses for a caller that asks again when the
// read fails: on a NATS cluster, a JetStream API request can go
// unanswered for a moment after a server restarts.
func tryReadStatuses(t *testing.T, js jetstream.JetStream, model string) ([]notification, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "TT_NTF", jetstream.OrderedConsumerConfig{FilterSubjects: []string{"tt.ntf." + model + ".req.>"}})
	if err != nil {
		return nil, fmt.Errorf("read the notifications of %s: %w", model, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the notifications of %s: %w", model, err)
	}
	pending := info.NumPending
	var out []notification
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("read the notifications of %s: %w", model, err)
		}
		for msg := range batch.Messages() {
			var st status
			require.NoError(t, json.Unmarshal(msg.Data(), &st), string(msg.Data()))
			out = append(out, notification{subject: msg.Subject(), header: msg.Headers().Get("Tt-Request-Id"), body: st})
			pending--
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("read the notifications of %s: %w", model, err)
		}
	}
	return out, nil
}

// requestID is the request id a notification names, without the model
// prefix a raw publisher puts in Nats-Msg-Id.
func requestID(model string, n notification) string {
	return strings.TrimPrefix(n.body.RequestID, model+".")
}

// manifest is the part of a version's manifest.json the checks read.
type manifest struct {
	Model      string   `json:"model"`
	Version    uint64   `json:"version"`
	AppliedSeq uint64   `json:"applied_seq"`
	LeaseEpoch uint64   `json:"lease_epoch"`
	DuckDB     *fileRef `json:"duckdb"`
	Tables     []struct {
		Name    string   `json:"name"`
		Rows    int64    `json:"rows"`
		Parquet *fileRef `json:"parquet"`
	} `json:"tables"`
}

type fileRef struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	Sha256 string `json:"sha256"`
}

func listSnapshots(t *testing.T, u urler, model string) []manifest {
	t.Helper()
	code, body, _ := do(t, http.MethodGet, u.url("/v1/models/"+model+"/snapshots"), "", nil)
	require.Equal(t, http.StatusOK, code, string(body))
	var list struct {
		Snapshots []manifest `json:"snapshots"`
	}
	require.NoError(t, json.Unmarshal(body, &list), string(body))
	return list.Snapshots
}

// checkExactlyOnce checks the promise after a run with faults: every
// acknowledged row applied exactly once, every acknowledged request with
// exactly one terminal notification that agrees with the final state,
// every kept version's files as its manifest says, holding exactly the
// rows of the sequences it claims, applied_seq growing with the version.
// Each check reports on its own, so one failed run shows all that broke.
func checkExactlyOnce(t *testing.T, js jetstream.JetStream, u urler, blobs blob.Store, l *ledger) {
	t.Helper()
	model := l.model
	require.Zero(t, l.lost.Load(), "requests never acknowledged before the deadline")
	assert.Empty(t, l.conflicts, "retries of one request acknowledged with different sequences")
	rows, seqs := l.snapshot()
	require.NotEmpty(t, rows)
	var maxSeq uint64
	for _, s := range seqs {
		maxSeq = max(maxSeq, s)
	}
	overHTTP := 0
	for id := range rows {
		if strings.HasPrefix(id, "h-") {
			overHTTP++
		}
	}
	t.Logf("%d requests acknowledged (%d over HTTP), last seq %d", len(rows), overHTTP, maxSeq)

	// Every request ends with exactly one terminal notification. A
	// notification is matched to its request by id or, failing that, by
	// the acknowledged sequence it names (so one that carries a fallback
	// id is reported as such, not as missing).
	bySeq := make(map[uint64]string, len(seqs))
	for id, s := range seqs {
		bySeq[s] = id
	}
	var ntfs []notification
	byID := map[string][]notification{}
	var extra, misnamed []string
	match := func() {
		byID, extra, misnamed = map[string][]notification{}, nil, nil
		for _, x := range ntfs {
			id := requestID(model, x)
			if l.setup[id] {
				continue
			}
			if _, ok := rows[id]; !ok {
				if owner, ok := bySeq[x.body.Seq]; ok {
					misnamed = append(misnamed, fmt.Sprintf("%s named %q: %s", owner, x.body.RequestID, x.body))
					id = owner
				} else {
					extra = append(extra, x.body.String())
					continue
				}
			} else if id != x.body.RequestID || id != x.header {
				misnamed = append(misnamed, fmt.Sprintf("%s named %q (header %q)", id, x.body.RequestID, x.header))
			}
			byID[id] = append(byID[id], x)
		}
	}
	prev := -1
	if !assert.Eventually(t, func() bool {
		var err error
		if ntfs, err = tryReadStatuses(t, js, model); err != nil {
			t.Log(err)
			return false
		}
		match()
		// Done when every request has one, or when there are as many
		// notifications as requests and no more arrive.
		settled := len(ntfs) >= len(rows) && len(ntfs) == prev
		prev = len(ntfs)
		return len(byID) == len(rows) || settled
	}, 2*time.Minute, 500*time.Millisecond, "notifications for only some acknowledged requests") {
		t.Errorf("notifications for %d of %d acknowledged requests", len(byID), len(rows))
	}
	var missing, doubled, wrong []string
	for id := range rows {
		if _, ok := byID[id]; !ok {
			missing = append(missing, id)
		}
	}
	for id, list := range byID {
		if len(list) != 1 {
			doubled = append(doubled, fmt.Sprintf("%s×%d %v", id, len(list), statuses(list)))
		}
		for _, x := range list {
			st := x.body
			if st.Status != "applied" || st.RowsAffected == nil || *st.RowsAffected != 1 || st.Seq != seqs[id] {
				wrong = append(wrong, fmt.Sprintf("%s (acked seq %d): %s", id, seqs[id], st))
			}
		}
	}
	assert.Empty(t, limit(missing), "acknowledged requests without a notification (%d)", len(missing))
	assert.Empty(t, limit(misnamed), "notifications whose request id is not the part after the model (%d)", len(misnamed))
	assert.Empty(t, limit(extra), "notifications of requests nobody acknowledged (%d)", len(extra))
	assert.Empty(t, limit(doubled), "requests with more than one terminal notification (%d)", len(doubled))
	assert.Empty(t, limit(wrong), "notifications that disagree with the final state (%d)", len(wrong))

	// The versions: wait for one that covers every acknowledged request.
	var versions []manifest
	ok := assert.Eventually(t, func() bool {
		versions = listSnapshots(t, u, model)
		return len(versions) > 0 && versions[0].AppliedSeq >= maxSeq
	}, 2*time.Minute, 250*time.Millisecond, "no version covers seq %d", maxSeq)
	if !ok {
		t.Logf("versions listed: %+v", versions)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i].Version < versions[j].Version })
	for i := 1; i < len(versions); i++ {
		assert.GreaterOrEqual(t, versions[i].AppliedSeq, versions[i-1].AppliedSeq,
			"applied_seq of v%d below that of v%d", versions[i].Version, versions[i-1].Version)
	}
	checked := 0
	for _, v := range versions {
		if checkVersion(t, blobs, model, v, rows, seqs) {
			checked++
		}
	}
	require.NotZero(t, checked, "every version of %s was collected while checking", model)
}

// checkVersion checks one kept version: its manifest in the blob store is
// the one listed, each file matches the manifest's size and sha256, and its
// DuckDB file holds exactly the acknowledged rows up to its applied_seq.
// It says false when the version was collected before it could be checked.
func checkVersion(t *testing.T, blobs blob.Store, model string, listed manifest, rows map[string]int64, seqs map[string]uint64) bool {
	t.Helper()
	ctx := context.Background()
	dir := blob.VersionPrefix(model, listed.Version)
	b, err := blobs.Get(ctx, dir+"/"+blob.ManifestFile)
	if errors.Is(err, blob.ErrNotFound) {
		t.Logf("v%d was collected while checking", listed.Version)
		return false
	}
	require.NoError(t, err)
	var m manifest
	require.NoError(t, json.Unmarshal(b, &m), string(b))
	assert.Equal(t, listed.AppliedSeq, m.AppliedSeq, "v%d: listed and stored manifest differ", m.Version)
	assert.Equal(t, listed.Version, m.Version, "v%d: manifest names another version", listed.Version)
	refs := []*fileRef{m.DuckDB}
	for _, tb := range m.Tables {
		refs = append(refs, tb.Parquet)
	}
	for _, ref := range refs {
		if !assert.NotNil(t, ref, "v%d: manifest without a file ref: %s", m.Version, b) {
			continue
		}
		data, err := blobs.Get(ctx, dir+"/"+ref.Path)
		if errors.Is(err, blob.ErrNotFound) {
			// Unpinned, a version may go at any moment once newer ones
			// are kept: the manifest was read before its files were.
			t.Logf("v%d was collected while checking (%s)", m.Version, ref.Path)
			return false
		}
		if !assert.NoError(t, err, "v%d: %s", m.Version, ref.Path) {
			continue
		}
		sum := sha256.Sum256(data)
		assert.Equal(t, ref.Bytes, int64(len(data)), "v%d: %s size differs from its manifest", m.Version, ref.Path)
		assert.Equal(t, ref.Sha256, hex.EncodeToString(sum[:]), "v%d: %s differs from its manifest", m.Version, ref.Path)
	}
	if m.DuckDB == nil {
		return true
	}
	// Copy the file: a read-only open of the shared store must not depend
	// on what a writer does next.
	data, err := blobs.Get(ctx, dir+"/"+m.DuckDB.Path)
	if errors.Is(err, blob.ErrNotFound) {
		t.Logf("v%d was collected while checking (%s)", m.Version, m.DuckDB.Path)
		return false
	}
	require.NoError(t, err)
	path := filepath.Join(t.TempDir(), fmt.Sprintf("v%d.duckdb", m.Version))
	require.NoError(t, os.WriteFile(path, data, 0o644))
	got := map[int64]int{}
	res, err := openReadOnly(t, path).Query("SELECT n FROM numbers")
	if err == nil {
		for res.Next() {
			var n int64
			require.NoError(t, res.Scan(&n))
			got[n]++
		}
		require.NoError(t, res.Err())
		res.Close()
	} else if !strings.Contains(err.Error(), "does not exist") {
		require.NoError(t, err)
	}
	var missing, twice, unexpected []string
	want := map[int64]bool{}
	for id, n := range rows {
		if seqs[id] <= m.AppliedSeq {
			want[n] = true
			if got[n] == 0 {
				missing = append(missing, id)
			}
		}
	}
	for n, c := range got {
		if c > 1 {
			twice = append(twice, fmt.Sprintf("%d×%d", n, c))
		}
		if !want[n] {
			unexpected = append(unexpected, fmt.Sprint(n))
		}
	}
	assert.Empty(t, limit(missing), "v%d (applied_seq %d): acknowledged rows missing (%d)", m.Version, m.AppliedSeq, len(missing))
	assert.Empty(t, limit(twice), "v%d: rows applied more than once (%d)", m.Version, len(twice))
	assert.Empty(t, limit(unexpected), "v%d (applied_seq %d): rows past its applied_seq or never acknowledged (%d)", m.Version, m.AppliedSeq, len(unexpected))
	return true
}

func limit(s []string) []string {
	sort.Strings(s)
	if len(s) > 10 {
		return append(s[:10], fmt.Sprintf("... %d more", len(s)-10))
	}
	return s
}

func statuses(list []notification) []string {
	var out []string
	for _, x := range list {
		out = append(out, x.body.String())
	}
	return out
}

func firstOf(list []notification) string {
	if len(list) == 0 {
		return "none"
	}
	return list[0].subject + " " + list[0].body.String()
}
