package notifier_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
	"github.com/teatree-dev/teatree/services/notifier"
)

const secret = "s3cret"

// receiver is a webhook target that answers with the statuses given, then
// 200, and keeps what it received.
type receiver struct {
	mu       sync.Mutex
	answers  []int
	bodies   [][]byte
	headers  []http.Header
	received int
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.received++
	r.bodies = append(r.bodies, b)
	r.headers = append(r.headers, req.Header.Clone())
	status := http.StatusOK
	if len(r.answers) > 0 {
		status, r.answers = r.answers[0], r.answers[1:]
	}
	w.WriteHeader(status)
}

func (r *receiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received
}

func hostOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}

// outcome publishes an applied outcome for request id, asking for a webhook.
func (h *harness) outcome(id, notifyURL string) {
	h.t.Helper()
	ev := &teatreev1.Outcomes{Model: "m", Statuses: []*teatreev1.RequestStatus{{
		RequestId: id, Model: "m", Op: "append", Status: "applied", Seq: 7, AppliedAt: "2026-11-23T10:00:00Z",
	}}}
	if notifyURL != "" {
		ev.NotifyUrls = map[string]string{id: notifyURL}
	}
	h.processed(h.publishOutcomes(ev, "out-m-"+id))
}

// delivery waits for the delivery record of request id to be final.
func (h *harness) delivery(id string) *teatreev1.Delivery {
	h.t.Helper()
	var d *teatreev1.Delivery
	require.Eventually(h.t, func() bool {
		keys, err := h.deliveries.ListKeys(context.Background())
		if err != nil {
			return false
		}
		for k := range keys.Keys() {
			if strings.HasPrefix(k, "_url.") {
				continue // a request's webhook, kept
			}
			e, err := h.deliveries.Get(context.Background(), k)
			if err != nil {
				continue
			}
			rec := &teatreev1.Delivery{}
			require.NoError(h.t, wire.Unmarshal(e.Value(), rec))
			if rec.GetRequestId() == id && rec.GetStatus() != "retrying" {
				d = rec
				return true
			}
		}
		return false
	}, 20*time.Second, 25*time.Millisecond, "no final delivery record for %s", id)
	return d
}

func TestWebhookSigned(t *testing.T) {
	t.Parallel()
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	h := startWith(t, notifier.WebhookConfig{Allow: []string{hostOf(t, srv.URL)}, Secret: secret})
	h.outcome("w1", srv.URL+"/hook")
	d := h.delivery("w1")
	require.Equal(t, "delivered", d.GetStatus())
	require.Equal(t, int32(1), d.GetAttempts())

	require.Equal(t, 1, rcv.count())
	body, hd := rcv.bodies[0], rcv.headers[0]
	require.JSONEq(t, `{"request_id":"w1","model":"m","op":"append","status":"applied","seq":7,"applied_at":"2026-11-23T10:00:00Z"}`, string(body))
	require.Equal(t, "application/json", hd.Get("Content-Type"))
	require.Equal(t, "applied", hd.Get("Tt-Status"))
	// Verify the signature as a receiver would.
	sig := hd.Get(subject.HeaderSignature)
	parts := strings.Split(sig, ",")
	require.Len(t, parts, 2, sig)
	ts, v1 := strings.TrimPrefix(parts[0], "t="), strings.TrimPrefix(parts[1], "v1=")
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	require.Equal(t, hex.EncodeToString(mac.Sum(nil)), v1)
	unix, err := strconv.ParseInt(ts, 10, 64)
	require.NoError(t, err)
	require.Equal(t, notifier.Sign(secret, time.Unix(unix, 0), body), sig)

	// The request's webhook is its sender's: the notification, which every
	// reader of the model may read, does not carry it.
	ntf := h.notification(h.names.NtfRequest("m", "w1"))
	require.Equal(t, subject.WebhookRequest, ntf.Header.Get(subject.HeaderWebhook))
	for k, vs := range ntf.Header {
		for _, v := range vs {
			require.NotContains(t, v, srv.URL, "header %s", k)
		}
	}
	require.NotContains(t, string(ntf.Data), srv.URL)
}

func TestWebhookRetriesThenGivesUp(t *testing.T) {
	t.Parallel()
	flaky := &receiver{answers: []int{500}}
	down := &receiver{answers: []int{500, 500, 500, 500, 500}}
	srvFlaky, srvDown := httptest.NewServer(flaky), httptest.NewServer(down)
	defer srvFlaky.Close()
	defer srvDown.Close()
	h := startWith(t, notifier.WebhookConfig{
		Allow: []string{hostOf(t, srvFlaky.URL), hostOf(t, srvDown.URL)}, Secret: secret,
		MaxAttempts: 3, Backoff: 50 * time.Millisecond,
	})
	h.outcome("retry", srvFlaky.URL)
	d := h.delivery("retry")
	require.Equal(t, "delivered", d.GetStatus())
	require.Equal(t, int32(2), d.GetAttempts(), "delivered on the retry after a 500")

	h.outcome("giveup", srvDown.URL)
	d = h.delivery("giveup")
	require.Equal(t, "failed", d.GetStatus())
	require.Equal(t, int32(3), d.GetAttempts())
	require.Contains(t, d.GetLastError(), "500")
	require.Equal(t, 3, down.count(), "no attempt after the limit")
}

func TestWebhookRefusedOutsideAllowList(t *testing.T) {
	t.Parallel()
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	// Only "localhost" is allowed; the target is 127.0.0.1.
	h := startWith(t, notifier.WebhookConfig{Allow: []string{"localhost"}, Secret: secret})
	h.outcome("refused", srv.URL)
	d := h.delivery("refused")
	require.Equal(t, "failed", d.GetStatus())
	require.Contains(t, d.GetLastError(), "allow-list")
	require.Equal(t, 0, rcv.count(), "a refused target is never called")
}

// TestModelWebhook: a model's own webhook gets every notification.
func TestModelWebhook(t *testing.T) {
	t.Parallel()
	rcv := &receiver{}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	h := startWith(t, notifier.WebhookConfig{Allow: []string{hostOf(t, srv.URL)}, Secret: secret})
	b, err := wire.Marshal(&teatreev1.ModelSpec{Id: "m", WebhookUrl: srv.URL})
	require.NoError(t, err)
	_, err = h.models.Put(context.Background(), "m", b)
	require.NoError(t, err)
	// The notifier learns of the spec through a watch: send until it has.
	n := 0
	require.Eventually(t, func() bool {
		n++
		h.outcome("mw-"+strconv.Itoa(n), "")
		return rcv.count() > 0
	}, 20*time.Second, 200*time.Millisecond)
}
