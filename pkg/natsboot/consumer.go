package natsboot

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// TakeConsumer creates or updates the durable consumer cfg on stream for a
// service that has just become its only reader: a replica elected leader,
// or the one process restarted. What an earlier reader of the consumer took
// and never acknowledged (it was killed, or stopped and lost the lead)
// would come back only after the consumer's AckWait; so a consumer with
// messages pending is made anew from its ack floor and delivers them at
// once. Messages past the floor that the earlier reader did acknowledge
// come again too: the services that call this handle a message twice as
// they handle a redelivery, without effect.
func TakeConsumer(ctx context.Context, js jetstream.JetStream, stream string, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	c, err := js.Consumer(ctx, stream, cfg.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return js.CreateOrUpdateConsumer(ctx, stream, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("consumer %s of %s: %w", cfg.Durable, stream, err)
	}
	info := c.CachedInfo()
	if info.NumAckPending == 0 {
		// Where a consumer starts cannot be updated: keep the existing one's.
		cfg.DeliverPolicy, cfg.OptStartSeq = info.Config.DeliverPolicy, info.Config.OptStartSeq
		return js.CreateOrUpdateConsumer(ctx, stream, cfg)
	}
	if err := js.DeleteConsumer(ctx, stream, cfg.Durable); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("recreate consumer %s of %s: %w", cfg.Durable, stream, err)
	}
	cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, info.AckFloor.Stream+1
	return js.CreateOrUpdateConsumer(ctx, stream, cfg)
}
