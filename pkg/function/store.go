package function

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// Store keeps definitions in the tt_functions bucket under <model>.<name>.
type Store struct {
	kv jetstream.KeyValue
}

// NewStore returns a store over the tt_functions bucket.
func NewStore(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

func key(model, name string) string { return model + "." + name }

// Get returns the definition of name on model; not_found when there is
// none.
func (s *Store) Get(ctx context.Context, model, name string) (*Definition, error) {
	e, err := s.kv.Get(ctx, key(model, name))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, apierr.Errorf(apierr.NotFound, "function %q is not registered on model %s", name, model)
	}
	if err != nil {
		return nil, fmt.Errorf("read function %s of %s: %w", name, model, err)
	}
	var d Definition
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return nil, fmt.Errorf("read function %s of %s: %w", name, model, err)
	}
	return &d, nil
}

// Put stores d, which the caller has checked, under d.Model and d.Name.
func (s *Store) Put(ctx context.Context, d *Definition) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, key(d.Model, d.Name), b); err != nil {
		return fmt.Errorf("store function %s of %s: %w", d.Name, d.Model, err)
	}
	return nil
}

// Delete removes name from model; not_found when it is not registered.
func (s *Store) Delete(ctx context.Context, model, name string) error {
	if _, err := s.Get(ctx, model, name); err != nil {
		return err
	}
	if err := s.kv.Delete(ctx, key(model, name)); err != nil {
		return fmt.Errorf("delete function %s of %s: %w", name, model, err)
	}
	return nil
}

// List returns the functions of model, by name.
func (s *Store) List(ctx context.Context, model string) ([]*Definition, error) {
	lister, err := s.kv.ListKeysFiltered(ctx, model+".*")
	if err != nil {
		return nil, fmt.Errorf("list functions of %s: %w", model, err)
	}
	var out []*Definition
	for k := range lister.Keys() {
		name, _ := strings.CutPrefix(k, model+".")
		d, err := s.Get(ctx, model, name)
		if err != nil {
			if code, _ := apierr.From(err); code == apierr.NotFound {
				continue // deleted meanwhile
			}
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
