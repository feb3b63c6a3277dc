// Package results stores the pages of query results that span more than
// one message, in the tt_results KV bucket (entries expire with the
// bucket's TTL), and builds the headers every page carries, whoever
// serves it.
package results

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// Meta describes a stored result.
type Meta struct {
	Model       string `json:"model"`
	Version     uint64 `json:"version"`
	ContentType string `json:"content_type"`
	Pages       int    `json:"pages"`
	Rows        int64  `json:"rows"`
}

// Store reads and writes stored results.
type Store struct {
	kv jetstream.KeyValue
}

// New returns a store over the tt_results bucket.
func New(kv jetstream.KeyValue) *Store { return &Store{kv: kv} }

func pageKey(id string, page int) string { return id + "." + strconv.Itoa(page) }
func metaKey(id string) string           { return id + ".meta" }

// PutPage stores one page.
func (s *Store) PutPage(ctx context.Context, id string, page int, b []byte) error {
	if _, err := s.kv.Put(ctx, pageKey(id, page), b); err != nil {
		return fmt.Errorf("store page %d of result %s: %w", page, id, err)
	}
	return nil
}

// PutMeta stores a result's description; it goes last, once every page is
// stored, so a result with a description is complete.
func (s *Store) PutMeta(ctx context.Context, id string, m Meta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if _, err := s.kv.Put(ctx, metaKey(id), b); err != nil {
		return fmt.Errorf("store result %s: %w", id, err)
	}
	return nil
}

// Get returns a page of a stored result; not_found when the result or the
// page does not exist or has expired.
func (s *Store) Get(ctx context.Context, id string, page int) (Meta, []byte, error) {
	var m Meta
	e, err := s.kv.Get(ctx, metaKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return m, nil, apierr.Errorf(apierr.NotFound, "result %s does not exist or has expired", id)
	}
	if err != nil {
		return m, nil, fmt.Errorf("read result %s: %w", id, err)
	}
	if err := json.Unmarshal(e.Value(), &m); err != nil {
		return m, nil, fmt.Errorf("read result %s: %w", id, err)
	}
	if page < 1 || page > m.Pages {
		return m, nil, apierr.Errorf(apierr.NotFound, "result %s has pages 1 to %d, not %d", id, m.Pages, page)
	}
	e, err = s.kv.Get(ctx, pageKey(id, page))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return m, nil, apierr.Errorf(apierr.NotFound, "page %d of result %s has expired", page, id)
	}
	if err != nil {
		return m, nil, fmt.Errorf("read page %d of result %s: %w", page, id, err)
	}
	return m, e.Value(), nil
}

// Headers are the headers of one page of a result: Tt-Rows counts the
// rows of the whole result; Tt-Result-Id is set when there is more than
// one page.
func Headers(id string, m Meta, page int) nats.Header {
	h := nats.Header{}
	h.Set(subject.HeaderModel, m.Model)
	h.Set(subject.HeaderStatus, subject.StatusResult)
	h.Set(subject.HeaderContentType, m.ContentType)
	h.Set(subject.HeaderVersion, strconv.FormatUint(m.Version, 10))
	h.Set(subject.HeaderPage, strconv.Itoa(page))
	h.Set(subject.HeaderPages, strconv.Itoa(m.Pages))
	h.Set(subject.HeaderRows, strconv.FormatInt(m.Rows, 10))
	if m.Pages > 1 {
		h.Set(subject.HeaderResultID, id)
	}
	return h
}
