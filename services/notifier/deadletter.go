package notifier

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// deadLetter records an event the notifier gave up on in TT_DEAD, on
// tt.dead.<model>, then acknowledges it so that the model's later events
// flow. When even that fails, the event is left to be delivered again.
func (n *Notifier) deadLetter(ctx context.Context, msg jetstream.Msg, cause error, attempts int) {
	model := eventModel(msg.Subject())
	dl := &teatreev1.DeadLetter{
		Subject:  msg.Subject(),
		Data:     msg.Data(),
		Headers:  map[string]string{},
		Error:    cause.Error(),
		Attempts: int32(attempts),
		At:       time.Now().UTC().Format(time.RFC3339Nano),
	}
	if meta, err := msg.Metadata(); err == nil {
		dl.StreamSeq = meta.Sequence.Stream
	}
	for k, v := range msg.Headers() {
		dl.Headers[k] = strings.Join(v, ", ")
	}
	err := n.publishDead(ctx, model, dl)
	if errors.Is(err, nats.ErrMaxPayload) {
		// The event fitted, but not with its error and headers around it:
		// the letter points at the event, still in TT_EVT for a while.
		dl.Data = nil
		dl.Error += " (the event's data is left out of this letter: read it from TT_EVT at stream_seq)"
		err = n.publishDead(ctx, model, dl)
	}
	if err != nil {
		n.deps.Log.ErrorContext(ctx, "dead letter not written; the event will be delivered again",
			"subject", msg.Subject(), "stream_seq", dl.StreamSeq, "err", err, "cause", cause)
		_ = msg.NakWithDelay(maxBackoff)
		return
	}
	n.deps.Log.ErrorContext(ctx, "gave up on an event; it is in the dead letters",
		"subject", msg.Subject(), "stream_seq", dl.StreamSeq, "attempts", attempts, "err", cause)
	_ = msg.Ack()
}

func (n *Notifier) publishDead(ctx context.Context, model string, dl *teatreev1.DeadLetter) error {
	b, err := proto.Marshal(dl)
	if err != nil {
		return err
	}
	m := nats.NewMsg(n.cfg.Names.Dead(model))
	m.Data = b
	// One letter per event, however often the notifier gives up on it.
	m.Header.Set(subject.HeaderMsgID, "dead."+model+"."+strconv.FormatUint(dl.StreamSeq, 10))
	m.Header.Set(subject.HeaderModel, model)
	_, err = n.deps.JS.PublishMsg(ctx, m, jetstream.WithExpectStream(n.cfg.Names.DeadStream()))
	return err
}
