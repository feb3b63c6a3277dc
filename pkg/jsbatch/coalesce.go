package jsbatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Coalescer publishes the messages of many concurrent callers to one
// stream together: whatever callers queue while a batch is being written
// goes out as the next atomic batch, so a node with many models writes
// their events with one fsync per batch instead of one per model. When a
// combined batch is refused (one caller's message is a duplicate or fails
// its expectations), each caller's messages are published alone, as
// PublishAll would.
type Coalescer struct {
	js   jetstream.JetStream
	log  *slog.Logger
	done Done

	mu    sync.Mutex
	queue []*job
	busy  bool
}

type job struct {
	msgs []*nats.Msg
	err  chan error
}

// publishTimeout bounds the writing of one batch on behalf of its callers.
const publishTimeout = 30 * time.Second

// NewCoalescer returns a coalescer publishing through js.
func NewCoalescer(js jetstream.JetStream, log *slog.Logger, done Done) *Coalescer {
	return &Coalescer{js: js, log: log, done: done}
}

// Publish publishes msgs with whatever other callers publish meanwhile and
// waits until JetStream has them. There is no goroutine of its own: a
// caller that finds no batch being written writes the queue, its own
// messages and everyone else's, until it is empty.
func (c *Coalescer) Publish(ctx context.Context, msgs []*nats.Msg) error {
	j := &job{msgs: msgs, err: make(chan error, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, j)
	lead := !c.busy
	c.busy = true
	c.mu.Unlock()
	if lead {
		c.drain()
	}
	select {
	case err := <-j.err:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// drain writes the queue as batches until it is empty. Publishing is not
// bound to any one caller's context: the others wait for it too.
func (c *Coalescer) drain() {
	for {
		c.mu.Lock()
		var jobs []*job
		n := 0
		for len(c.queue) > 0 && (n == 0 || n+len(c.queue[0].msgs) <= MaxAtomicBatch) {
			n += len(c.queue[0].msgs)
			jobs = append(jobs, c.queue[0])
			c.queue = c.queue[1:]
		}
		if len(jobs) == 0 {
			c.busy = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.write(jobs)
	}
}

func (c *Coalescer) write(jobs []*job) {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if len(jobs) > 1 {
		var all []*nats.Msg
		for _, j := range jobs {
			all = append(all, j.msgs...)
		}
		err := publishBatch(ctx, c.js.Conn(), all)
		if err == nil {
			for _, j := range jobs {
				j.err <- nil
			}
			return
		}
		c.log.DebugContext(ctx, "combined batch refused; publishing each caller's alone", "callers", len(jobs), "err", err)
	}
	for _, j := range jobs {
		j.err <- PublishAll(ctx, c.js, c.log, c.done, j.msgs)
	}
}
