// Package jsbatch publishes JetStream messages in atomic batches: under
// sync always, JetStream writes a batch with one fsync where it would fsync
// every message alone.
package jsbatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// MaxAtomicBatch is JetStream's default limit of messages in one batch.
const MaxAtomicBatch = 1000

// Headers of JetStream's atomic batch publish.
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// Done reports a publish error that leaves nothing to do for its message
// (for example: its subject holds the message already).
type Done func(error) bool

// PublishAll publishes msgs and waits until JetStream has them, several as
// atomic batches. A batch is all or nothing, and refused whole when any of
// its messages is a duplicate or fails its expectations (a replay, a
// redelivery): its messages are then published one by one, where each of
// those is done on its own.
func PublishAll(ctx context.Context, js jetstream.JetStream, log *slog.Logger, done Done, msgs []*nats.Msg) error {
	for len(msgs) > 1 {
		chunk := msgs[:min(len(msgs), MaxAtomicBatch)]
		msgs = msgs[len(chunk):]
		if err := publishBatch(ctx, js.Conn(), chunk); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.DebugContext(ctx, "atomic batch refused; publishing one by one", "err", err)
			if err := PublishEach(ctx, js, log, done, chunk); err != nil {
				return err
			}
		}
	}
	return PublishEach(ctx, js, log, done, msgs)
}

// publishBatch publishes msgs as one atomic batch.
func publishBatch(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg) error {
	id := nuid.Next()
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

// PublishEach publishes msgs without waiting between them, then waits for
// every acknowledgement. A message refused with an error done accepts is
// done.
func PublishEach(ctx context.Context, js jetstream.JetStream, log *slog.Logger, done Done, msgs []*nats.Msg) error {
	acks := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := js.PublishMsgAsync(m)
		if err != nil {
			return fmt.Errorf("publish %s: %w", m.Subject, err)
		}
		acks = append(acks, f)
	}
	for _, f := range acks {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			if done != nil && done(err) {
				log.DebugContext(ctx, "published already", "subject", f.Msg().Subject)
				continue
			}
			return fmt.Errorf("publish %s: %w", f.Msg().Subject, err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
