package auth

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
)

// Holder keeps the policy in force and loads it again from its file on
// Reload, so that a token removed from the file is refused without a
// restart. A policy that fails to load leaves the one in force.
type Holder struct {
	file    string
	current atomic.Pointer[Policy]

	mu       sync.Mutex
	onReload []func(*Policy)
}

// NewHolder loads file.
func NewHolder(file string) (*Holder, error) {
	p, err := Load(file)
	if err != nil {
		return nil, err
	}
	h := &Holder{file: file}
	h.current.Store(p)
	return h, nil
}

// Policy returns the policy in force.
func (h *Holder) Policy() *Policy { return h.current.Load() }

// OnReload registers f to run with each newly loaded policy, as the
// embedded NATS server's users must follow it.
func (h *Holder) OnReload(f func(*Policy)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.onReload = append(h.onReload, f)
}

// Reload loads the file again and puts it in force.
func (h *Holder) Reload() error {
	p, err := Load(h.file)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.current.Store(p)
	for _, f := range h.onReload {
		f(p)
	}
	return nil
}

// ReloadOnSIGHUP reloads the policy on every SIGHUP until ctx ends.
func (h *Holder) ReloadOnSIGHUP(ctx context.Context, log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGHUP)
	go func() {
		defer signal.Stop(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case <-sig:
				if err := h.Reload(); err != nil {
					log.ErrorContext(ctx, "reload policy: the one loaded before stays in force", "file", h.file, "err", err)
					continue
				}
				log.InfoContext(ctx, "policy reloaded", "file", h.file, "principals", len(h.Policy().Principals))
			}
		}
	}()
}
