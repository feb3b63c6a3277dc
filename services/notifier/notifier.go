// Package notifier turns the workers' raw events (TT_EVT) into the public
// notifications of TT_NTF: one terminal notification per request and one
// per published version. Every notification carries a Nats-Msg-Id derived
// from what it describes, and a request's status notification is written
// only where none exists yet, so a notifier that restarts mid-event, or an
// event redelivered long after, neither loses nor doubles one.
package notifier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/jsbatch"
	"github.com/teatree-dev/teatree/pkg/natsboot"
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
	// Lanes is how many models' events are processed at once. Events of
	// one model always share a lane and keep their order.
	Lanes int
	// MaxAckPending is how many events may be in flight, over all lanes.
	MaxAckPending int
	// MaxAttempts is how often an event is tried before it goes to
	// TT_DEAD and its lane moves on.
	MaxAttempts int
	// RetryBackoff is the wait before the second attempt; it doubles
	// with each further one, up to maxBackoff.
	RetryBackoff time.Duration
}

// Defaults of Config.
const (
	DefaultLanes         = 32
	DefaultMaxAckPending = 1024
	DefaultMaxAttempts   = 5
	DefaultRetryBackoff  = 250 * time.Millisecond
)

// WithDefaults fills zero fields with their defaults.
func (c Config) WithDefaults() Config {
	if c.Names == (subject.Names{}) {
		c.Names = subject.Default()
	}
	if c.Durable == "" {
		c.Durable = "notifier"
	}
	if c.Lanes == 0 {
		c.Lanes = DefaultLanes
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Lanes < 1 {
		errs = append(errs, fmt.Errorf("notifier lanes %d: want at least 1", c.Lanes))
	}
	if c.MaxAckPending < c.Lanes {
		errs = append(errs, fmt.Errorf("notifier max ack pending %d: want at least one per lane (%d)", c.MaxAckPending, c.Lanes))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("notifier max attempts %d: want at least 1", c.MaxAttempts))
	}
	if c.RetryBackoff < 0 || c.RetryBackoff > maxBackoff {
		errs = append(errs, fmt.Errorf("notifier retry backoff %s: want 0 to %s", c.RetryBackoff, maxBackoff))
	}
	return errors.Join(errs...)
}

// Deps are what the notifier talks to.
type Deps struct {
	JS jetstream.JetStream
	// Results holds stored query results, whose pages a result's
	// notifications carry; a result event fails without it. Every
	// replica serves them on tt.result.<id>.<page> with ServeResults,
	// leading or not.
	Results *results.Store
	// Models (tt_models) holds the specs whose lease epochs decide which
	// outcomes are trusted and which rejections are the notifier's to
	// finish. With Deliveries (tt_deliveries) it also lets the notifier
	// deliver webhooks; with either nil it delivers none.
	Models     jetstream.KeyValue
	Deliveries jetstream.KeyValue
	// Calls (tt_calls) holds the records of compute calls, which only
	// the notifier writes; a call event fails without it.
	Calls jetstream.KeyValue
	// Blobs holds the results workers write for compute calls; a call's
	// done event fails without it.
	Blobs blob.Store
	Log   *slog.Logger
}

// Notifier is the notifier service.
type Notifier struct {
	cfg  Config
	deps Deps
	ntf  jetstream.Stream
	// mut is TT_MUT, from which a finished rejection is deleted.
	mut jetstream.Stream
	// callStream is TT_CALL, from which a cancelled call's job is deleted.
	callStream jetstream.Stream
	// deadlines times the calls that have not ended.
	deadlines *deadlines
	// pub writes the notifications of all lanes: what they publish at
	// once goes to TT_NTF as one atomic batch.
	pub *jsbatch.Coalescer
}

// New returns a notifier; Run starts it.
func New(cfg Config, deps Deps) *Notifier {
	return &Notifier{cfg: cfg.WithDefaults(), deps: deps, pub: jsbatch.NewCoalescer(deps.JS, deps.Log, alreadyNotified), deadlines: newDeadlines()}
}

// ackWait is how long JetStream waits for an event's acknowledgement
// before it delivers the event again; a lane retrying an event extends it.
const ackWait = 30 * time.Second

// Run processes events until ctx ends.
func (n *Notifier) Run(ctx context.Context, ready func()) error {
	if err := n.cfg.Validate(); err != nil {
		return err
	}
	names := n.cfg.Names
	var err error
	if n.ntf, err = n.deps.JS.Stream(ctx, names.NtfStream()); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	if n.mut, err = n.deps.JS.Stream(ctx, names.MutStream()); err != nil {
		return fmt.Errorf("notifier: %w", err)
	}
	if n.callStream, err = n.deps.JS.Stream(ctx, names.CallStream()); err != nil {
		return fmt.Errorf("notifier: %w", err)
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
	cons, err := natsboot.TakeConsumer(ctx, n.deps.JS, names.EvtStream(), jetstream.ConsumerConfig{
		Durable:     n.cfg.Durable,
		Description: "turns worker events into notifications",
		AckPolicy:   jetstream.AckExplicitPolicy,
		AckWait:     ackWait,
		// Many events in flight let the lanes work on many models at
		// once; each lane keeps its models' events in order.
		MaxAckPending: n.cfg.MaxAckPending,
		FilterSubject: names.EvtAll(),
	})
	if err != nil {
		return fmt.Errorf("notifier consumer: %w", err)
	}
	l := n.startLanes(ctx)
	defer l.stop()
	// The timers stop first: a timer firing queues in a lane.
	defer n.deadlines.stop()
	n.deadlines.start(func(k callKey) { l.enqueue(ctx, k.kvKey(), laneItem{expired: k}) })
	if n.deps.Calls != nil {
		if err := n.scheduleAll(ctx); err != nil {
			return fmt.Errorf("notifier: %w", err)
		}
	}
	ready()
	err = natsboot.Consume(ctx, cons, natsboot.ConsumeConfig{Log: n.deps.Log}, func(msg jetstream.Msg) { l.dispatch(ctx, msg) })
	if err != nil {
		return fmt.Errorf("notifier consume: %w", err)
	}
	return nil
}

// handle turns one event into its notifications. An error means the event
// may succeed when tried again; an event that never can is dropped.
func (n *Notifier) handle(ctx context.Context, msg jetstream.Msg) error {
	names := n.cfg.Names
	switch kind := lastToken(msg.Subject()); kind {
	case subject.EventOutcomes:
		var ev teatreev1.Outcomes
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			n.deps.Log.ErrorContext(ctx, "drop malformed outcomes event", "err", err)
			return nil
		}
		statuses, err := n.trusted(ctx, &ev)
		if err != nil {
			return err
		}
		var out []*nats.Msg
		for _, s := range statuses {
			subj := names.NtfRequest(s.GetModel(), s.GetRequestId())
			if ev.GetReplay() {
				// Not needed for correctness (a status is only written
				// where none exists), but it keeps the atomic batch of a
				// replay from being refused for the statuses it repeats.
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
			u := ev.GetNotifyUrls()[s.GetRequestId()]
			if err := n.keepWebhook(ctx, s.GetModel(), s.GetRequestId(), u); err != nil {
				return err
			}
			n.markWebhook(m, u)
			out = append(out, m)
		}
		return n.pub.Publish(ctx, out)
	case subject.EventReject:
		var ev teatreev1.Outcomes
		if err := proto.Unmarshal(msg.Data(), &ev); err != nil {
			n.deps.Log.ErrorContext(ctx, "drop malformed reject event", "err", err)
			return nil
		}
		return n.finishRejects(ctx, &ev)
	case subject.EventSnapshot:
		var man teatreev1.Manifest
		if err := wire.Unmarshal(msg.Data(), &man); err != nil {
			n.deps.Log.ErrorContext(ctx, "drop malformed snapshot event", "err", err)
			return nil
		}
		m := nats.NewMsg(names.NtfSnapshot(man.GetModel(), man.GetVersion()))
		m.Data = msg.Data()
		m.Header.Set(subject.HeaderMsgID, subject.SnapshotMsgID(man.GetModel(), man.GetVersion()))
		// A version is notified once, however late its event comes again.
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
		m.Header.Set(subject.HeaderModel, man.GetModel())
		m.Header.Set(subject.HeaderVersion, strconv.FormatUint(man.GetVersion(), 10))
		m.Header.Set(subject.HeaderSeq, strconv.FormatUint(man.GetAppliedSeq(), 10))
		m.Header.Set(subject.HeaderPage, "1")
		m.Header.Set(subject.HeaderPages, "1")
		m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
		return n.pub.Publish(ctx, []*nats.Msg{m})
	case subject.EventResult:
		var out teatreev1.QueryOutcome
		if err := proto.Unmarshal(msg.Data(), &out); err != nil {
			n.deps.Log.ErrorContext(ctx, "drop malformed result event", "err", err)
			return nil
		}
		return n.publishResult(ctx, &out, redelivered(msg))
	case subject.EventCall:
		return n.handleCall(ctx, msg)
	default:
		n.deps.Log.WarnContext(ctx, "drop event of unknown kind", "subject", msg.Subject())
		return nil
	}
}

// redelivered reports whether JetStream delivered msg before: its
// notifications may exist already.
func redelivered(msg jetstream.Msg) bool {
	meta, err := msg.Metadata()
	return err != nil || meta.NumDelivered > 1
}

func lastToken(s string) string {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '.' {
			return s[i+1:]
		}
	}
	return s
}
