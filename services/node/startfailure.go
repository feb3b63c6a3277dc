package node

import (
	"context"
	"fmt"
	"time"

	"github.com/teatree-dev/teatree/pkg/catalog"
)

// recordStartFailure writes, where the gateway and the dispatcher look
// (the model's catalog entry), that this node gives the model up because
// its db-manager kept failing since since, attempts times, the last with
// cause. The record's through_seq tells the dispatcher which requests were
// waiting meanwhile: those end unavailable unless another node can take
// the model.
func (n *Node) recordStartFailure(ctx context.Context, model string, h *hosted, since time.Time, attempts int, cause error) {
	through, err := n.lastMutSeq(ctx)
	if err == nil {
		err = catalog.RecordStartFailure(ctx, n.deps.Models, model, n.cfg.ID, h.lease.GetEpoch(), since, attempts, cause, through)
	}
	if err != nil {
		n.log.WarnContext(ctx, "record the start failure of a model", "model", model, "err", err)
	}
}

// lastMutSeq returns TT_MUT's last sequence.
func (n *Node) lastMutSeq(ctx context.Context) (uint64, error) {
	mut, err := n.deps.JS.Stream(ctx, n.cfg.Names.MutStream())
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", n.cfg.Names.MutStream(), err)
	}
	info, err := mut.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", n.cfg.Names.MutStream(), err)
	}
	return info.State.LastSeq, nil
}

// clearStartFailure forgets the model's start failure once one of its
// db-managers has started.
func (n *Node) clearStartFailure(ctx context.Context, model string) {
	if err := catalog.ClearStartFailure(ctx, n.deps.Models, model); err != nil {
		n.log.WarnContext(ctx, "clear the start failure of a started model", "model", model, "err", err)
		return
	}
	n.log.InfoContext(ctx, "model started again; its start failure is cleared", "model", model)
}
