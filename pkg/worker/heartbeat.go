package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/teatree-dev/teatree/pkg/calls"
)

// beat puts the worker's heartbeat in tt_compute: what it serves and the
// calls it runs now.
func (w *Worker) beat(ctx context.Context) error {
	hb := calls.Heartbeat{
		ID: w.cfg.ID, Capabilities: w.cfg.Capabilities, Handlers: w.handlerNames(), Slots: w.cfg.Slots,
		Running: w.runningKeys(), Lang: "go", StartedAt: w.started.Format(time.RFC3339Nano),
	}
	body, err := json.Marshal(hb)
	if err != nil {
		return err
	}
	if _, err := w.deps.Compute.Put(ctx, w.cfg.ID, body); err != nil {
		return fmt.Errorf("put heartbeat of worker %s: %w", w.cfg.ID, err)
	}
	return nil
}

// heartbeat puts the heartbeat every Heartbeat until ctx ends. A missed
// put is logged: the entry outlives two of them.
func (w *Worker) heartbeat(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if err := w.beat(ctx); err != nil && ctx.Err() == nil {
				w.deps.Log.WarnContext(ctx, "heartbeat", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// unadvertise deletes the heartbeat on a clean stop, so that no call is
// placed on a worker that is gone.
func (w *Worker) unadvertise() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := w.deps.Compute.Delete(ctx, w.cfg.ID); err != nil {
		w.deps.Log.Warn("delete heartbeat", "err", err)
	}
}
