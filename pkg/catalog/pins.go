package catalog

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Pins keep versions from garbage collection while readers use them. A
// pin is a key <model>.<version>.<pin id> in the tt_pins bucket, which
// expires with the bucket's TTL unless it is renewed.

func pinKey(model string, version uint64, id string) string {
	return model + "." + strconv.FormatUint(version, 10) + "." + id
}

// Pin pins a version and returns the pin's id.
func Pin(ctx context.Context, kv jetstream.KeyValue, model string, version uint64) (string, error) {
	id := nuid.Next()
	if _, err := kv.Put(ctx, pinKey(model, version, id), nil); err != nil {
		return "", fmt.Errorf("pin version %d of %s: %w", version, model, err)
	}
	return id, nil
}

// RenewPin extends a pin for another TTL; ErrLeaseLost when it expired.
func RenewPin(ctx context.Context, kv jetstream.KeyValue, model string, version uint64, id string) error {
	key := pinKey(model, version, id)
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("pin %s of version %d of %s: %w", id, version, model, ErrLeaseLost)
	}
	if err != nil {
		return err
	}
	if _, err := kv.Update(ctx, key, nil, e.Revision()); err != nil {
		return fmt.Errorf("renew pin %s: %w", id, err)
	}
	return nil
}

// Unpin removes a pin.
func Unpin(ctx context.Context, kv jetstream.KeyValue, model string, version uint64, id string) error {
	return kv.Purge(ctx, pinKey(model, version, id))
}

// Pinned reports whether any reader pins a version.
func Pinned(ctx context.Context, kv jetstream.KeyValue, model string, version uint64) (bool, error) {
	keys, err := kv.ListKeysFiltered(ctx, model+"."+strconv.FormatUint(version, 10)+".*")
	if err != nil {
		return false, fmt.Errorf("list pins of version %d of %s: %w", version, model, err)
	}
	pinned := false
	for range keys.Keys() {
		pinned = true
	}
	return pinned, nil
}
