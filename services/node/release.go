package node

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/teatree-dev/teatree/pkg/catalog"
)

// releaseWait bounds how long a release waits for the model's db-manager
// to publish what it applied and stop; the dispatcher waits a little
// longer before it takes the lease back itself.
const releaseWait = 25 * time.Second

// release hands a model over for a dispatcher moving it: its db-manager
// finishes the batch in flight, applies nothing more, publishes a version
// of everything it applied (so that the next holder restores it instead
// of replaying), and stops; the lease is then released, as for an idle
// model. The reply is empty once the lease no longer names this node,
// else it says why.
func (n *Node) release(ctx context.Context, msg *nats.Msg) {
	model := string(msg.Data)
	n.mu.Lock()
	h := n.models[model]
	n.mu.Unlock()
	if h == nil {
		_ = msg.Respond([]byte(fmt.Sprintf("model %s does not run on node %s", model, n.cfg.ID)))
		return
	}
	h.drainOnce.Do(func() { close(h.drain) })
	select {
	case <-h.done:
	case <-ctx.Done():
		return
	case <-time.After(releaseWait):
		_ = msg.Respond([]byte(fmt.Sprintf("model %s on node %s: not handed over within %s", model, n.cfg.ID, releaseWait)))
		return
	}
	l, _, err := catalog.GetLease(ctx, n.deps.Owners, model)
	switch {
	case err != nil:
		_ = msg.Respond([]byte(err.Error()))
	case l != nil && l.GetNode() == n.cfg.ID:
		_ = msg.Respond([]byte(fmt.Sprintf("model %s stopped on node %s, but its lease was not released", model, n.cfg.ID)))
	default:
		n.log.InfoContext(ctx, "handed a model over for a move", "model", model)
		_ = msg.Respond(nil)
	}
}
