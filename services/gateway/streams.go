package gateway

import (
	"context"
	"errors"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// streams looks up stream handles once and keeps them: a handle is only a
// name and the stream's config, and looking it up costs a round trip.
type streams struct {
	js jetstream.JetStream

	mu      sync.Mutex
	handles map[string]jetstream.Stream
}

func newStreams(js jetstream.JetStream) *streams {
	return &streams{js: js, handles: map[string]jetstream.Stream{}}
}

// get returns the handle of the stream called name.
func (s *streams) get(ctx context.Context, name string) (jetstream.Stream, error) {
	s.mu.Lock()
	h, ok := s.handles[name]
	s.mu.Unlock()
	if ok {
		return h, nil
	}
	h, err := s.js.Stream(ctx, name)
	if err != nil {
		return nil, wrapNATS("look up stream "+name, err)
	}
	s.mu.Lock()
	s.handles[name] = h
	s.mu.Unlock()
	return h, nil
}

// lastMsg returns the newest message of stream name on subj (which may be
// a wildcard), or nil when there is none.
func (s *streams) lastMsg(ctx context.Context, name, subj string) (*jetstream.RawStreamMsg, error) {
	st, err := s.get(ctx, name)
	if err != nil {
		return nil, err
	}
	msg, err := st.GetLastMsgForSubject(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, wrapNATS("read last message on "+subj, err)
	}
	return msg, nil
}
