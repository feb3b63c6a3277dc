package natsboot

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// DefaultConsumeCheck is ConsumeConfig.Check when zero.
const DefaultConsumeCheck = 5 * time.Second

// ConsumeConfig configures Consume.
type ConsumeConfig struct {
	// Check is how long the reader may go without a message before
	// Consume asks the server whether it still holds a pull request of
	// the reader's.
	Check time.Duration
	// Log is slog.Default() when nil.
	Log *slog.Logger
}

// Consume runs handler on the messages of the durable pull consumer cons
// until ctx ends, one at a time, as cons.Consume does, and returns nil
// once the last call of handler has returned; an error only when no
// reader can be started.
//
// It keeps the reader delivering. A pull request the server lost, or
// one the client never sent again after a consumer leadership change
// (nats.go issue 2063), leaves a reader on a healthy connection that
// receives nothing until its heartbeats are missed, or forever. So when
// no message came for Check, Consume looks at the consumer; if the
// server holds no waiting pull request at two such looks in a row, it
// stops the reader and starts a new one, which pulls at once. Only a
// reader that has nothing in hand is replaced: a message the old reader
// had received but not yet handed over is dropped with it, and comes
// back after the consumer's AckWait as any unacknowledged message does,
// never twice at once. The server counts the waiting pulls of every
// reader of the consumer: another reader's pull hides a lost one of this
// reader, which the services' one-leader-per-role rule makes rare.
func Consume(ctx context.Context, cons jetstream.Consumer, cfg ConsumeConfig, handler jetstream.MessageHandler) error {
	if cfg.Check <= 0 {
		cfg.Check = DefaultConsumeCheck
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	name := cons.CachedInfo().Stream + "/" + cons.CachedInfo().Name
	r := &reader{cons: cons, handler: handler, log: cfg.Log.With("consumer", name)}
	if err := r.start(ctx); err != nil {
		return fmt.Errorf("consume %s: %w", name, err)
	}
	defer r.stop()
	tick := time.NewTicker(cfg.Check)
	defer tick.Stop()
	strikes := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if !r.idle() {
			strikes = 0
			continue
		}
		info, err := r.info(ctx, cfg.Check)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			// A consumer electing its leader does not answer, and one
			// being made anew (TakeConsumer) is missing a moment: look
			// again.
			r.log.DebugContext(ctx, "look at an idle consumer", "err", err)
			continue
		case info.NumWaiting > 0:
			strikes = 0
			continue
		}
		if strikes++; strikes < 2 {
			continue
		}
		strikes = 0
		r.log.WarnContext(ctx, "the server holds no pull request of this reader: starting a new one",
			"pending", info.NumPending, "ack_pending", info.NumAckPending)
		r.stop()
		if err := r.start(ctx); err != nil {
			return fmt.Errorf("consume %s again: %w", name, err)
		}
	}
}

// reader is one cons.Consume at a time, and what it did since the last
// look.
type reader struct {
	cons    jetstream.Consumer
	handler jetstream.MessageHandler
	log     *slog.Logger
	cc      jetstream.ConsumeContext

	mu sync.Mutex
	// running says a call of handler has not returned; calls says one
	// began since idle was last asked.
	running, calls int
	// done is closed when no call of handler runs: stop waits on it.
	done chan struct{}
}

func (r *reader) start(ctx context.Context) error {
	cc, err := r.cons.Consume(r.handle, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		// Status messages (leadership change, missed heartbeats) the
		// client recovers from itself, or Consume does.
		r.log.DebugContext(ctx, "consume", "err", err)
	}))
	if err != nil {
		return err
	}
	r.cc = cc
	return nil
}

func (r *reader) handle(msg jetstream.Msg) {
	r.mu.Lock()
	r.running++
	r.calls++
	if r.running == 1 {
		r.done = make(chan struct{})
	}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		if r.running--; r.running == 0 {
			close(r.done)
		}
		r.mu.Unlock()
	}()
	r.handler(msg)
}

// idle reports whether no call of handler began since it was last asked,
// and none runs.
func (r *reader) idle() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	idle := r.calls == 0 && r.running == 0
	r.calls = 0
	return idle
}

func (r *reader) info(ctx context.Context, timeout time.Duration) (*jetstream.ConsumerInfo, error) {
	ictx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return r.cons.Info(ictx)
}

// stop stops the reader and waits until its subscription is closed and
// no call of handler runs.
func (r *reader) stop() {
	r.cc.Stop()
	<-r.cc.Closed()
	r.mu.Lock()
	done := r.done
	running := r.running
	r.mu.Unlock()
	if running > 0 {
		<-done
	}
}
