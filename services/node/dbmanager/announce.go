package dbmanager

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// announce publishes the outcomes of a batch for the notifier and waits
// until JetStream has them.
func (w *writer) announce(ctx context.Context, statuses []*teatreev1.RequestStatus, notify map[string]string, replay bool) error {
	ev := &teatreev1.Outcomes{Model: w.m.cfg.Model, Epoch: w.m.cfg.Epoch, Statuses: statuses, NotifyUrls: notify, Replay: replay}
	data, err := proto.Marshal(ev)
	if err != nil {
		return err
	}
	msg := nats.NewMsg(w.m.cfg.Names.Evt(w.m.cfg.Model, subject.EventOutcomes))
	msg.Data = data
	msg.Header.Set(subject.HeaderMsgID, subject.OutcomesMsgID(w.m.cfg.Model, statuses[len(statuses)-1].GetSeq(), w.m.cfg.Epoch))
	if err := w.m.publishEvent(ctx, msg); err != nil {
		return fmt.Errorf("publish outcomes: %w", err)
	}
	return nil
}

// replayOutcomes re-announces the outcomes committed after the last
// sequence known to be announced: a crash may have come between a commit
// and its event. The notifier drops those it has already notified.
func (w *writer) replayOutcomes(ctx context.Context) error {
	rows, err := w.st.conn.QueryContext(ctx, `SELECT request_id, seq, op, status, rows_affected, error_code, error_message, applied_at, principal
		FROM _tt_requests WHERE seq > ? ORDER BY seq`, w.eventsSeq)
	if err != nil {
		return fmt.Errorf("read outcomes to replay: %w", err)
	}
	defer rows.Close()
	var statuses []*teatreev1.RequestStatus
	for rows.Next() {
		s := &teatreev1.RequestStatus{Model: w.m.cfg.Model}
		var rowsAffected *int64
		var code, message, principal *string
		var at time.Time
		if err := rows.Scan(&s.RequestId, &s.Seq, &s.Op, &s.Status, &rowsAffected, &code, &message, &at, &principal); err != nil {
			return fmt.Errorf("read outcomes to replay: %w", err)
		}
		s.RowsAffected, s.Principal = rowsAffected, deref(principal)
		s.AppliedAt = at.UTC().Format(time.RFC3339Nano)
		if code != nil {
			s.Error = &teatreev1.Error{Code: *code, Message: deref(message)}
		}
		statuses = append(statuses, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read outcomes to replay: %w", err)
	}
	w.published = w.eventsSeq
	if len(statuses) > 0 {
		notify, err := w.notifyURLs(ctx, statuses)
		if err != nil {
			return err
		}
		if err := w.announce(ctx, statuses, notify, true); err != nil {
			return err
		}
		w.m.log.InfoContext(ctx, "replayed outcomes", "count", len(statuses))
	}
	w.published = w.applied
	return nil
}

// notifyURLs reads the webhooks that requests to replay asked for from
// their messages in TT_MUT: the model file does not keep them, for any
// reader of a version could read them there. A message purged since (its
// request is in a version the file is not behind, which a replay after a
// crash hardly ever is) loses its webhook, not its notification.
func (w *writer) notifyURLs(ctx context.Context, statuses []*teatreev1.RequestStatus) (map[string]string, error) {
	mut, err := w.m.deps.JS.Stream(ctx, w.m.cfg.Names.MutStream())
	if err != nil {
		return nil, fmt.Errorf("read the webhooks of outcomes to replay: %w", err)
	}
	notify := map[string]string{}
	for _, s := range statuses {
		msg, err := mut.GetMsg(ctx, s.GetSeq())
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read the webhooks of outcomes to replay: %w", err)
		}
		if u := msg.Header.Get(subject.HeaderNotifyURL); u != "" {
			notify[s.GetRequestId()] = u
		}
	}
	return notify, nil
}

// nullable is NULL for an empty string.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
