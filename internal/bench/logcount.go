package bench

import (
	"context"
	"log/slog"
	"sync/atomic"
)

// The node's log messages that say a model's db-manager started or that
// the node closed a model: the bench counts them to show how models open
// and close within the slots, without reaching into the node.
const (
	msgManagerStarted = "db-manager started"
	msgEvicted        = "closed least recently used model for a placement"
	msgUnloaded       = "unloaded idle model" // an eviction's close too

)

// logCounts counts log records by message, for a fixed set of messages.
type logCounts map[string]*atomic.Int64

func newLogCounts(msgs ...string) logCounts {
	c := logCounts{}
	for _, m := range msgs {
		c[m] = &atomic.Int64{}
	}
	return c
}

// of is how many records with message msg went through the handler.
func (c logCounts) of(msg string) int64 { return c[msg].Load() }

// handler wraps h, counting the records it passes on.
func (c logCounts) handler(h slog.Handler) slog.Handler { return countingHandler{h, c} }

type countingHandler struct {
	slog.Handler
	counts logCounts
}

func (h countingHandler) Handle(ctx context.Context, rec slog.Record) error {
	if n, ok := h.counts[rec.Message]; ok {
		n.Add(1)
	}
	return h.Handler.Handle(ctx, rec)
}

func (h countingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return countingHandler{h.Handler.WithAttrs(attrs), h.counts}
}

func (h countingHandler) WithGroup(name string) slog.Handler {
	return countingHandler{h.Handler.WithGroup(name), h.counts}
}
