package notifier

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// A request's own webhook (Tt-Notify-Url) belongs to whoever sent the
// request: the readers of its notifications must not learn it. So it does
// not travel on the notification. The notifier keeps it in tt_deliveries,
// which no client may read, under targetKey, and marks the notification
// Tt-Webhook: request; the webhook consumer reads the URL back from there.

// targetKey is where the webhook of a request is kept; "_" starts no
// model id, so it is apart from the keys of deliveries.
func targetKey(model, requestID string) string { return "_url." + model + "." + requestID }

// keepWebhook keeps url, the webhook a request of model asked for, before
// its notifications are published; without tt_deliveries no webhook is
// delivered, and nothing is kept.
func (n *Notifier) keepWebhook(ctx context.Context, model, requestID, url string) error {
	if url == "" || n.deps.Deliveries == nil {
		return nil
	}
	if _, err := n.deps.Deliveries.Put(ctx, targetKey(model, requestID), []byte(url)); err != nil {
		return fmt.Errorf("keep the webhook of request %s of %s: %w", requestID, model, err)
	}
	return nil
}

// markWebhook marks m, a notification of a request whose webhook is kept.
func (n *Notifier) markWebhook(m *nats.Msg, url string) {
	if url != "" && n.deps.Deliveries != nil {
		m.Header.Set(subject.HeaderWebhook, subject.WebhookRequest)
	}
}

// requestTarget is the webhook kept for the request that msg notifies,
// "" when it has none or it is no longer kept (older than the
// notifications are).
func (w *webhooks) requestTarget(ctx context.Context, msg jetstream.Msg) (string, error) {
	h := msg.Headers()
	if h.Get(subject.HeaderWebhook) != subject.WebhookRequest {
		return "", nil
	}
	model, id := h.Get(subject.HeaderModel), h.Get(subject.HeaderRequestID)
	e, err := w.deliveries.Get(ctx, targetKey(model, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		w.n.deps.Log.WarnContext(ctx, "the webhook of a request is no longer kept; not delivered", "model", model, "request_id", id)
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the webhook of request %s of %s: %w", id, model, err)
	}
	return string(e.Value()), nil
}
