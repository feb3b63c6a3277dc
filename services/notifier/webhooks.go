package notifier

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/natsboot"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// WebhookConfig configures webhook delivery.
type WebhookConfig struct {
	// Allow lists the hosts ("host" or "host:port") webhooks may be
	// delivered to. None by default: a client must not be able to make the
	// server call internal addresses.
	Allow []string
	// Secret keys the HMAC-SHA256 signature of every delivery.
	Secret string
	// MaxAttempts is how many times a delivery is tried before it is
	// recorded as failed; default 6.
	MaxAttempts int
	// Backoff is the wait before the first retry; it doubles each time.
	// Default 1s.
	Backoff time.Duration
	// Timeout bounds one attempt; default 10s.
	Timeout time.Duration
}

func (c WebhookConfig) withDefaults() WebhookConfig {
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 6
	}
	if c.Backoff <= 0 {
		c.Backoff = time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	return c
}

// Delivery statuses.
const (
	deliveryDelivered = "delivered"
	deliveryFailed    = "failed"
	deliveryRetrying  = "retrying"
)

// webhooks delivers notifications to the URLs their requests or models
// name. It follows TT_NTF with a consumer of its own, so a slow target
// never holds up notifications.
type webhooks struct {
	cfg        WebhookConfig
	names      subject.Names
	deliveries jetstream.KeyValue
	client     *http.Client
	mu         sync.Mutex
	// modelURLs are the models' own webhooks, kept from tt_models.
	modelURLs map[string]string
	n         *Notifier
}

// startWebhooks creates the webhook consumer and loads the models'
// webhooks before it returns, so that no notification published after the
// notifier is ready is missed; run delivers until ctx ends.
func (n *Notifier) startWebhooks(ctx context.Context) (run func(), err error) {
	w := &webhooks{
		cfg: n.cfg.Webhooks.withDefaults(), names: n.cfg.Names, deliveries: n.deps.Deliveries,
		modelURLs: map[string]string{}, n: n,
	}
	w.client = &http.Client{
		Timeout: w.cfg.Timeout,
		// A redirect could lead anywhere, past the allow-list.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	specs, err := n.deps.Models.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch models: %w", err)
	}
	for e := range specs.Updates() {
		if e == nil {
			break // the models that exist are in
		}
		w.onSpec(e)
	}
	go func() {
		defer specs.Stop()
		for e := range specs.Updates() {
			if e != nil {
				w.onSpec(e)
			}
		}
	}()
	cons, err := natsboot.TakeConsumer(ctx, n.deps.JS, w.names.NtfStream(), jetstream.ConsumerConfig{
		Durable:       n.cfg.Durable + "-webhooks",
		Description:   "delivers notifications to webhooks",
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       2*w.cfg.Timeout + 10*time.Second,
		MaxAckPending: 256,
		FilterSubject: w.names.NtfAll(),
	})
	if err != nil {
		return nil, fmt.Errorf("webhook consumer: %w", err)
	}
	return func() {
		sem := make(chan struct{}, 32)
		var wg sync.WaitGroup
		err := natsboot.Consume(ctx, cons, natsboot.ConsumeConfig{Log: n.deps.Log}, func(msg jetstream.Msg) {
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				w.deliver(ctx, msg)
			}()
		})
		if err != nil {
			n.deps.Log.ErrorContext(ctx, "webhooks stopped", "err", err)
		}
		wg.Wait()
	}, nil
}

func (w *webhooks) onSpec(e jetstream.KeyValueEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(w.modelURLs, e.Key())
		return
	}
	if spec, err := catalog.DecodeModel(e.Value()); err == nil && spec.GetWebhookUrl() != "" {
		w.modelURLs[e.Key()] = spec.GetWebhookUrl()
	} else {
		delete(w.modelURLs, e.Key())
	}
}

// deliver posts one notification to each of its targets, and acks it once
// every target has an outcome; otherwise it comes back after a backoff.
func (w *webhooks) deliver(ctx context.Context, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.Term()
		return
	}
	h := msg.Headers()
	model := h.Get(subject.HeaderModel)
	var targets []string
	u, err := w.requestTarget(ctx, msg)
	if err != nil {
		w.n.deps.Log.WarnContext(ctx, "webhook", "err", err)
		_ = msg.NakWithDelay(w.cfg.Backoff)
		return
	}
	if u != "" {
		targets = append(targets, u)
	}
	w.mu.Lock()
	if u := w.modelURLs[model]; u != "" && !slices.Contains(targets, u) {
		targets = append(targets, u)
	}
	w.mu.Unlock()
	attempt := int(meta.NumDelivered)
	done := true
	for _, target := range targets {
		rec := &teatreev1.Delivery{Model: model, RequestId: h.Get(subject.HeaderRequestID), NotificationSeq: meta.Sequence.Stream, Url: target}
		key := deliveryKey(model, meta.Sequence.Stream, target)
		if prev, err := w.record(ctx, key); err == nil && prev.GetStatus() != deliveryRetrying && prev.GetStatus() != "" {
			continue // decided in an earlier attempt
		}
		rec.Attempts = int32(attempt)
		if err := w.allowed(target); err != nil {
			rec.Attempts, rec.Status, rec.LastError = 0, deliveryFailed, err.Error()
		} else if err := w.post(ctx, target, msg); err != nil {
			rec.Status, rec.LastError = deliveryRetrying, err.Error()
			if attempt >= w.cfg.MaxAttempts {
				rec.Status = deliveryFailed
			} else {
				done = false
			}
		} else {
			rec.Status = deliveryDelivered
		}
		w.save(ctx, key, rec)
	}
	if done {
		_ = msg.Ack()
		return
	}
	_ = msg.NakWithDelay(w.cfg.Backoff << min(attempt-1, 16))
}

// allowed checks a target against the operator's allow-list.
func (w *webhooks) allowed(target string) error {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("webhook %q: not an http(s) URL", target)
	}
	if !slices.Contains(w.cfg.Allow, u.Host) && !slices.Contains(w.cfg.Allow, u.Hostname()) {
		return fmt.Errorf("webhook host %q is not in the allow-list (--webhook-allow)", u.Host)
	}
	return nil
}

// post sends the notification's body, signed: Tt-Signature is
// t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" under the secret>.
func (w *webhooks) post(ctx context.Context, target string, msg jetstream.Msg) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(msg.Data()))
	if err != nil {
		return err
	}
	for _, k := range []string{subject.HeaderContentType, subject.HeaderModel, subject.HeaderRequestID, subject.HeaderStatus,
		subject.HeaderSeq, subject.HeaderPage, subject.HeaderPages, subject.HeaderVersion, subject.HeaderRows, subject.HeaderPrincipal} {
		if v := msg.Headers().Get(k); v != "" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set(subject.HeaderSignature, Sign(w.cfg.Secret, time.Now(), msg.Data()))
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

// Sign returns the Tt-Signature header of body sent at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac.Sum(nil))
}

func deliveryKey(model string, seq uint64, target string) string {
	sum := sha256.Sum256([]byte(target))
	return model + "." + strconv.FormatUint(seq, 10) + "." + hex.EncodeToString(sum[:8])
}

func (w *webhooks) record(ctx context.Context, key string) (*teatreev1.Delivery, error) {
	e, err := w.deliveries.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	d := &teatreev1.Delivery{}
	return d, wire.Unmarshal(e.Value(), d)
}

func (w *webhooks) save(ctx context.Context, key string, d *teatreev1.Delivery) {
	d.UpdatedAt = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := wire.Marshal(d)
	if err == nil {
		_, err = w.deliveries.Put(ctx, key, b)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		w.n.deps.Log.WarnContext(ctx, "record webhook delivery", "key", key, "err", err)
	}
}
