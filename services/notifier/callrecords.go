package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/calls"
)

// callKey names a compute call: its model and call id.
type callKey struct{ model, id string }

// kvKey is the call's key in tt_calls, <model>.<call id>.
func (k callKey) kvKey() string { return k.model + "." + k.id }

// loadCall returns the call's record and its revision in tt_calls; a call
// without one is nil at revision 0.
func (n *Notifier) loadCall(ctx context.Context, k callKey) (*calls.Record, uint64, error) {
	e, err := n.deps.Calls.Get(ctx, k.kvKey())
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read call %s: %w", k.kvKey(), err)
	}
	rec, err := decodeCall(e.Value())
	if err != nil {
		return nil, 0, fmt.Errorf("read call %s: %w", k.kvKey(), err)
	}
	return rec, e.Revision(), nil
}

func decodeCall(b []byte) (*calls.Record, error) {
	var rec calls.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, err
	}
	return &rec, nil
}

// storeCall writes rec where revision rev was read (0: where none was),
// so that a write based on a stale read fails instead of losing one: the
// event is then tried again from a fresh read.
func (n *Notifier) storeCall(ctx context.Context, rec *calls.Record, rev uint64) error {
	k := callKey{rec.Model, rec.CallID}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if rev == 0 {
		_, err = n.deps.Calls.Create(ctx, k.kvKey(), b)
	} else {
		_, err = n.deps.Calls.Update(ctx, k.kvKey(), b, rev)
	}
	if err != nil {
		return fmt.Errorf("write call %s: %w", k.kvKey(), err)
	}
	return nil
}

// attempt returns the entry of attempt a in rec.Attempts, appending one
// when there is none.
func attempt(rec *calls.Record, a int) *calls.Attempt {
	for i := range rec.Attempts {
		if rec.Attempts[i].Attempt == a {
			return &rec.Attempts[i]
		}
	}
	rec.Attempts = append(rec.Attempts, calls.Attempt{Attempt: a})
	return &rec.Attempts[len(rec.Attempts)-1]
}
