// Package notifier turns the workers' raw events (TT_EVT) into the public
// notifications of TT_NTF: one terminal notification per request and one
// per published version. Every notification carries a Nats-Msg-Id derived
// from what it describes, so a notifier that restarts mid-event neither
// loses nor doubles one.
package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/results"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Config configures the notifier.
type Config struct {
	Names subject.Names
	// Durable is the consumer name on TT_EVT shared by all notifiers.
	Durable string
	// Webhooks configures webhook delivery.
	Webhooks WebhookConfig
}

// Deps are what the notifier talks to.
type Deps struct {
	JS jetstream.JetStream
	// Results holds stored query results, served on tt.result.<id>.<page>;
	// nil serves none.
	Results *results.Store
	// Models (tt_models) and Deliveries (tt_deliveries) let the notifier
	// deliver webhooks; with either nil it delivers none.
	Models     jetstream.KeyValue
	Deliveries jetstream.KeyValue
	Log        *slog.Logger
}

// Notifier is the notifier service.
type Notifier struct {
	cfg  Config
	deps Deps
	ntf  jetstream.Stream
}

// New returns a notifier; Run starts it.
func New(cfg Config, deps Deps) *Notifier {
	if cfg.Durable == "" {
		cfg.Durable = "notifier"
	}
	return &Notifier{cfg: cfg, deps: deps}
}

// Run processes events until ctx ends.
func (n *Notifier) Run(ctx context.Context, ready func()) error {
	names := n.cfg.Names
	var err error
	if n.ntf, err = n.deps.JS.Stream(ctx, names.NtfStream()); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	if n.deps.Results != nil {
		svc, err := n.serveResults(ctx, n.deps.JS.Conn(), n.deps.Results)
		if err != nil {
			return err
		}
		defer svc.Stop()
	}
	if n.deps.Models != nil && n.deps.Deliveries != nil {
		run, err := n.startWebhooks(ctx)
		if err != nil {
			return err
		}
		hooks := make(chan struct{})
		go func() { defer close(hooks); run() }()
		defer func() { <-hooks }()
	}
	cons, err := n.deps.JS.CreateOrUpdateConsumer(ctx, names.EvtStream(), jetstream.ConsumerConfig{
		Durable:     n.cfg.Durable,
		Description: "turns worker events into notifications",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     30 * time.Second,
		// One event at a time keeps a model's notifications in the order
		// its requests were applied.
		MaxAckPending: 1,
		FilterSubject: names.EvtAll(),
	})
	if err != nil {
		return fmt.Errorf("notifier consumer: %w", err)
	}
	iter, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("notifier consume: %w", err)
	}
	go func() {
		<-ctx.Done()
		iter.Stop()
	}()
	ready()
	for {
		msg, err := iter.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("notifier consume: %w", err)
		}
		if err := n.handle(ctx, msg); err != nil {
			n.deps.Log.WarnContext(ctx, "notify", "subject", msg.Subject(), "err", err)
			_ = msg.NakWithDelay(time.Second)
			continue
		}
		_ = msg.Ack()
	}
}

func (n *Notifier) handle(ctx context.Context, msg jetstream.Msg) error {
	names := n.cfg.Names
	switch kind := lastToken(msg.Subject()); kind {
	case subject.EventOutcomes:
		var ev teatreev1.Outcomes
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			n.deps.Log.ErrorContext(ctx, "drop malformed outcomes event", "err", err)
			return nil
		}
		var out []*nats.Msg
		for _, s := range ev.GetStatuses() {
			subj := names.NtfRequest(s.GetModel(), s.GetRequestId())
			if ev.GetReplay() {
				exists, err := n.exists(ctx, subj)
				if err != nil {
					return err
				}
				if exists {
					continue
				}
			}
			m, err := n.statusMsg(s)
			if err != nil {
				return err
			}
			if u := ev.GetNotifyUrls()[s.GetRequestId()]; u != "" {
				m.Header.Set(subject.HeaderNotifyURL, u)
			}
			out = append(out, m)
		}
		return n.publishAll(ctx, out)
	case subject.EventSnapshot:
		var man teatreev1.Manifest
		if err := wire.Unmarshal(msg.Data(), &man); err != nil {
			n.deps.Log.ErrorContext(ctx, "drop malformed snapshot event", "err", err)
			return nil
		}
		m := nats.NewMsg(names.NtfSnapshot(man.GetModel(), man.GetVersion()))
		m.Data = msg.Data()
		m.Header.Set(subject.HeaderMsgID, subject.SnapshotMsgID(man.GetModel(), man.GetVersion()))
		m.Header.Set(subject.HeaderModel, man.GetModel())
		m.Header.Set(subject.HeaderVersion, strconv.FormatUint(man.GetVersion(), 10))
		m.Header.Set(subject.HeaderSeq, strconv.FormatUint(man.GetAppliedSeq(), 10))
		m.Header.Set(subject.HeaderPage, "1")
		m.Header.Set(subject.HeaderPages, "1")
		m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
		return n.publishAll(ctx, []*nats.Msg{m})
	case subject.EventResult:
		var out teatreev1.QueryOutcome
		if err := proto.Unmarshal(msg.Data(), &out); err != nil {
			n.deps.Log.ErrorContext(ctx, "drop malformed result event", "err", err)
			return nil
		}
		return n.publishResult(ctx, &out)
	default:
		n.deps.Log.WarnContext(ctx, "drop event of unknown kind", "subject", msg.Subject())
		return nil
	}
}

// statusMsg is the terminal status notification of a request.
func (n *Notifier) statusMsg(s *teatreev1.RequestStatus) (*nats.Msg, error) {
	body, err := wire.Marshal(s)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(n.cfg.Names.NtfRequest(s.GetModel(), s.GetRequestId()))
	m.Data = body
	m.Header.Set(subject.HeaderMsgID, subject.RequestNtfMsgID(s.GetModel(), s.GetRequestId(), 1))
	m.Header.Set(subject.HeaderModel, s.GetModel())
	m.Header.Set(subject.HeaderRequestID, s.GetRequestId())
	m.Header.Set(subject.HeaderStatus, s.GetStatus())
	if s.GetSeq() > 0 {
		m.Header.Set(subject.HeaderSeq, strconv.FormatUint(s.GetSeq(), 10))
	}
	m.Header.Set(subject.HeaderPage, "1")
	m.Header.Set(subject.HeaderPages, "1")
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	return m, nil
}

// exists reports whether a notification was already published on subj:
// a replayed outcome may be older than TT_NTF's duplicate window.
func (n *Notifier) exists(ctx context.Context, subj string) (bool, error) {
	_, err := n.ntf.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// publishAll publishes msgs and waits until JetStream has them. Several go
// as atomic batches: JetStream writes a batch with one fsync where it would
// fsync every message alone.
func (n *Notifier) publishAll(ctx context.Context, msgs []*nats.Msg) error {
	for len(msgs) > 1 {
		chunk := msgs[:min(len(msgs), maxAtomicBatch)]
		msgs = msgs[len(chunk):]
		if err := n.publishBatch(ctx, chunk); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A batch is all or nothing, and refused whole when any of
			// its messages is a duplicate (a replay): publish them one
			// by one, where each duplicate is dropped on its own.
			n.deps.Log.DebugContext(ctx, "atomic batch refused; publishing one by one", "err", err)
			if err := n.publishEach(ctx, chunk); err != nil {
				return err
			}
		}
	}
	return n.publishEach(ctx, msgs)
}

// maxAtomicBatch is JetStream's default limit of messages in one batch.
const maxAtomicBatch = 1000

// Headers of JetStream's atomic batch publish.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// publishBatch publishes msgs as one atomic batch.
func (n *Notifier) publishBatch(ctx context.Context, msgs []*nats.Msg) error {
	id := nuid.Next()
	nc := n.deps.JS.Conn()
	defer func() {
		for _, m := range msgs {
			m.Header.Del(hdrBatchID)
			m.Header.Del(hdrBatchSeq)
			m.Header.Del(hdrBatchCommit)
		}
	}()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		reply, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		var ack struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
			Count int `json:"count"`
		}
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return fmt.Errorf("atomic batch reply %q: %w", reply.Data, err)
		}
		if ack.Error != nil {
			return errors.New(ack.Error.Description)
		}
		if ack.Count != len(msgs) {
			return fmt.Errorf("atomic batch: %d of %d messages stored", ack.Count, len(msgs))
		}
	}
	return nil
}

// publishEach publishes msgs without waiting between them, then waits for
// every acknowledgement.
func (n *Notifier) publishEach(ctx context.Context, msgs []*nats.Msg) error {
	acks := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := n.deps.JS.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func lastToken(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return s[i+1:]
		}
	}
	return s
}
