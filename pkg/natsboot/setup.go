package natsboot

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// Config sets the durable settings of teatree's streams and buckets.
type Config struct {
	Names subject.Names
	// Replicas of every stream and bucket: 1 on a laptop, 3 in a cluster.
	Replicas int
	// DuplicateWindow is how long TT_MUT remembers a Nats-Msg-Id.
	DuplicateWindow time.Duration
	// NotificationMaxAge is how long TT_NTF keeps notifications for replay.
	NotificationMaxAge time.Duration
	// LeaseTTL is how long a model's lease outlives its node's last
	// heartbeat. Nodes and dispatchers enforce it; tt_owners itself has no
	// TTL, since leases are written at grant, release and take-back only.
	LeaseTTL time.Duration
	// WorkerTTL is how long a node's heartbeat outlives the node.
	WorkerTTL time.Duration
	// ResultTTL is how long a stored query result can be paged through.
	ResultTTL time.Duration
	// PinTTL is how long a version pin lasts unless it is renewed.
	PinTTL time.Duration
}

// Defaults of Config.
const (
	DefaultDuplicateWindow    = 2 * time.Minute
	DefaultNotificationMaxAge = 24 * time.Hour
	DefaultLeaseTTL           = 10 * time.Second
	DefaultWorkerTTL          = 10 * time.Second
	// ComputeWorkerTTL is how long a compute worker's heartbeat outlives
	// it; workers put theirs every 5 s (the contract's "Workers").
	ComputeWorkerTTL = 15 * time.Second
	DefaultResultTTL = time.Hour
	DefaultPinTTL    = 2 * time.Minute
	// derivedDuplicateWindow covers a notifier or db-manager that retries
	// derived messages after a crash and a restart.
	derivedDuplicateWindow = 30 * time.Minute
)

// requestTimeout bounds each create or update. When services create the
// same new stream of a cluster at once, the server creates it but may not
// answer some of them; the stream is there at the next attempt (see
// SetupRetry), so waiting longer for that answer only delays the start.
const requestTimeout = 3 * time.Second

// MaxModelConsumers is the most consumers TT_MUT has at once: one per model
// running on any node. An ordered consumer costs about 25 KiB (server and
// client together, measured with 2,000 of them), so 100,000 cost 2.5 GB,
// less than the DuckDB instances of that many open models.
const MaxModelConsumers = 100_000

// WithDefaults fills zero fields with their defaults.
func (c Config) WithDefaults() Config {
	if c.Names == (subject.Names{}) {
		c.Names = subject.Default()
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.NotificationMaxAge == 0 {
		c.NotificationMaxAge = DefaultNotificationMaxAge
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.WorkerTTL == 0 {
		c.WorkerTTL = DefaultWorkerTTL
	}
	if c.ResultTTL == 0 {
		c.ResultTTL = DefaultResultTTL
	}
	if c.PinTTL == 0 {
		c.PinTTL = DefaultPinTTL
	}
	return c
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	var errs []error
	if c.Replicas < 1 || c.Replicas > 5 {
		errs = append(errs, fmt.Errorf("replicas %d: want 1 to 5", c.Replicas))
	}
	if c.LeaseTTL < time.Second {
		errs = append(errs, fmt.Errorf("lease ttl %s: want at least 1s", c.LeaseTTL))
	}
	if c.DuplicateWindow < time.Second {
		errs = append(errs, fmt.Errorf("duplicate window %s: want at least 1s", c.DuplicateWindow))
	}
	return errors.Join(errs...)
}

// Setup creates the streams and KV buckets, or updates them to cfg. It is
// idempotent, so every service calls it at start.
func Setup(ctx context.Context, js jetstream.JetStream, cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	n := cfg.Names
	streams := []jetstream.StreamConfig{{
		Name:        n.MutStream(),
		Description: "mutation requests: the source of truth",
		Subjects:    []string{n.MutAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		AllowDirect: true,
		// Each model running somewhere reads TT_MUT through a consumer of
		// its own. nats-server's default of 1,000 consumers per stream
		// stopped the 991st model from starting; a limit set on the stream
		// overrides it on any server, embedded or not (-1 does not).
		MaxConsumers: MaxModelConsumers,
	}, {
		Name:        n.CallStream(),
		Description: "capability-routed jobs",
		Subjects:    []string{n.CallAll()},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}, {
		Name:        n.EvtStream(),
		Description: "raw worker events for the notifier",
		Subjects:    []string{n.EvtAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.NotificationMaxAge,
		Duplicates:  derivedDuplicateWindow,
		// A node writes its models' events together as atomic batches.
		AllowAtomicPublish: true,
	}, {
		Name:        n.NtfStream(),
		Description: "public notifications, kept for replay",
		Subjects:    []string{n.NtfAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.NotificationMaxAge,
		Duplicates:  derivedDuplicateWindow,
		AllowDirect: true,
		// The notifier writes a group commit's notifications as one atomic
		// batch: one fsync for all of them under sync always.
		AllowAtomicPublish: true,
	}, {
		Name:        n.DeadStream(),
		Description: "events the notifier gave up on, kept for an operator",
		Subjects:    []string{n.DeadAll()},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		MaxAge:      cfg.NotificationMaxAge,
		Duplicates:  derivedDuplicateWindow,
	}}
	for _, sc := range streams {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := js.CreateOrUpdateStream(rctx, sc)
		cancel()
		if err != nil {
			return fmt.Errorf("create stream %s: %w", sc.Name, err)
		}
	}
	buckets := []jetstream.KeyValueConfig{{
		Bucket:      n.ModelsBucket(),
		Description: "model specs and their newest version",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}, {
		Bucket:      n.OwnersBucket(),
		Description: "model leases: which node holds the read-write connection",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// No TTL: a lease holds while its node heartbeats in tt_workers,
		// and is never rewritten meanwhile. Setup updates a bucket made
		// with the TTL of old, which expired leases that were not renewed.
	}, {
		Bucket:      n.WorkersBucket(),
		Description: "node heartbeats: capabilities and free slots",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		TTL:         cfg.WorkerTTL,
	}, {
		Bucket:      n.ResultsBucket(),
		Description: "pages of stored query results",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		TTL:         cfg.ResultTTL,
	}, {
		Bucket:      n.DeliveriesBucket(),
		Description: "what became of each webhook delivery",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		TTL:         cfg.NotificationMaxAge,
	}, {
		Bucket:      n.PinsBucket(),
		Description: "versions pinned by readers, kept from garbage collection",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		TTL:         cfg.PinTTL,
	}, {
		Bucket:      n.FunctionsBucket(),
		Description: "functions registered on models, under <model>.<name>",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	}, {
		Bucket:      n.CallsBucket(),
		Description: "compute calls' records, under <model>.<call id>",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		TTL:         cfg.NotificationMaxAge,
	}, {
		Bucket:      n.ComputeBucket(),
		Description: "compute workers' heartbeats: capabilities, handlers, slots",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		TTL:         ComputeWorkerTTL,
	}, {
		Bucket:      n.LeadersBucket(),
		Description: "the leader of each singleton service (dispatcher, notifier)",
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
		// The election's TTL: a leader that stops renewing loses its key
		// this long after its last renewal (see pkg/leader).
		TTL: cfg.LeaseTTL,
	}}
	for _, kc := range buckets {
		rctx, cancel := context.WithTimeout(ctx, requestTimeout)
		_, err := js.CreateOrUpdateKeyValue(rctx, kc)
		cancel()
		if err != nil {
			return fmt.Errorf("create bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}
