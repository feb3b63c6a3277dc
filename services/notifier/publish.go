package notifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// statusMsg is the terminal status notification of a request. It is
// written only where no notification of the request exists yet, so that
// however late an event is delivered again, a request ends once.
func (n *Notifier) statusMsg(s *teatreev1.RequestStatus) (*nats.Msg, error) {
	body, err := wire.Marshal(s)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(n.cfg.Names.NtfRequest(s.GetModel(), s.GetRequestId()))
	m.Data = body
	m.Header.Set(subject.HeaderMsgID, subject.RequestNtfMsgID(s.GetModel(), s.GetRequestId(), 1))
	m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	m.Header.Set(subject.HeaderModel, s.GetModel())
	m.Header.Set(subject.HeaderRequestID, s.GetRequestId())
	m.Header.Set(subject.HeaderStatus, s.GetStatus())
	if s.GetSeq() > 0 {
		m.Header.Set(subject.HeaderSeq, strconv.FormatUint(s.GetSeq(), 10))
	}
	m.Header.Set(subject.HeaderPage, "1")
	m.Header.Set(subject.HeaderPages, "1")
	m.Header.Set(subject.HeaderContentType, subject.ContentJSON)
	return m, nil
}

// exists reports whether a notification was already published on subj:
// a replayed outcome may be older than TT_NTF's duplicate window.
func (n *Notifier) exists(ctx context.Context, subj string) (bool, error) {
	_, err := n.last(ctx, subj)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	return err == nil, err
}

// last returns the newest notification on subj.
func (n *Notifier) last(ctx context.Context, subj string) (*jetstream.RawStreamMsg, error) {
	m, err := n.ntf.GetLastMsgForSubject(ctx, subj)
	if err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("read %s: %w", subj, err)
	}
	return m, err
}

// alreadyNotified reports a publish refused because its subject holds a
// notification already: the message expected to be the first there.
func alreadyNotified(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// publishAll publishes msgs and waits until JetStream has them. Several go
// as atomic batches: JetStream writes a batch with one fsync where it would
// fsync every message alone.
func (n *Notifier) publishAll(ctx context.Context, msgs []*nats.Msg) error {
	for len(msgs) > 1 {
		chunk := msgs[:min(len(msgs), maxAtomicBatch)]
		msgs = msgs[len(chunk):]
		if err := n.publishBatch(ctx, chunk); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// A batch is all or nothing, and refused whole when any of
			// its messages is a duplicate or finds a notification on its
			// subject (a replay, a redelivery): publish them one by one,
			// where each of those is done on its own.
			n.deps.Log.DebugContext(ctx, "atomic batch refused; publishing one by one", "err", err)
			if err := n.publishEach(ctx, chunk); err != nil {
				return err
			}
		}
	}
	return n.publishEach(ctx, msgs)
}

// maxAtomicBatch is JetStream's default limit of messages in one batch.
const maxAtomicBatch = 1000

// Headers of JetStream's atomic batch publish.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// publishBatch publishes msgs as one atomic batch.
func (n *Notifier) publishBatch(ctx context.Context, msgs []*nats.Msg) error {
	id := nuid.Next()
	nc := n.deps.JS.Conn()
	defer func() {
		for _, m := range msgs {
			m.Header.Del(hdrBatchID)
			m.Header.Del(hdrBatchSeq)
			m.Header.Del(hdrBatchCommit)
		}
	}()
	for i, m := range msgs {
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < len(msgs)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		reply, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		var ack struct {
			Error *struct {
				Description string `json:"description"`
			} `json:"error"`
			Count int `json:"count"`
		}
		if err := json.Unmarshal(reply.Data, &ack); err != nil {
			return fmt.Errorf("atomic batch reply %q: %w", reply.Data, err)
		}
		if ack.Error != nil {
			return errors.New(ack.Error.Description)
		}
		if ack.Count != len(msgs) {
			return fmt.Errorf("atomic batch: %d of %d messages stored", ack.Count, len(msgs))
		}
	}
	return nil
}

// publishEach publishes msgs without waiting between them, then waits for
// every acknowledgement. A message refused because its subject holds a
// notification already is done.
func (n *Notifier) publishEach(ctx context.Context, msgs []*nats.Msg) error {
	acks := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := n.deps.JS.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if alreadyNotified(err) {
				n.deps.Log.DebugContext(ctx, "already notified", "subject", f.Msg().Subject)
				continue
			}
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
