// Package leader elects one leader per role (the dispatcher, the notifier)
// among any number of replicas, through a key of a JetStream KV bucket
// (tt_leaders) whose TTL is the election's.
//
// A candidate leads while the role's key holds its id: it creates the key
// to win, and renews it every TTL/3 with an update that expects the
// revision it wrote last. Standbys try again whenever the key is deleted
// and every TTL/4, so a leader that stops renewing is followed once its key
// expires, at most a TTL after its last renewal.
//
// Fencing is by lease deadline. The leader's work runs with a context that
// is cancelled when a renewal fails, and at the latest when TTL minus a
// margin has passed since the leader last sent a renewal that succeeded.
// That is safe: the server received that renewal after it was sent and
// expires the key by its own clock no earlier than TTL after it received
// it, so nobody else can win the key before the leader's deadline, and the
// margin leaves the leader's work time to see its context end. A leader
// stopped meanwhile (SIGSTOP, a long pause) finds its deadline passed when
// it runs again and stops. What the work writes is still guarded by its
// own compare-and-set where that matters (leases in tt_owners): the
// election avoids double work, it is not the only fence.
package leader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Candidate is one replica that may lead a role.
type Candidate struct {
	// KV is the bucket of leaders (tt_leaders). Its TTL is the election's
	// TTL, so that every candidate uses the one the key expires by.
	KV jetstream.KeyValue
	// Role is the key: the service that only one replica may run at once.
	Role string
	// ID names this candidate; unique among live candidates, and stable
	// across restarts of one replica (a candidate takes back at once a key
	// that holds its own id).
	ID  string
	Log *slog.Logger
	// Standby, if set, is called whenever the candidate finds another
	// leading.
	Standby func()
}

// Lead is the work of a leader. It must return promptly once ctx ends: a
// new leader may start when the lease deadline has passed. term is the
// revision of the key at which the leader won, for logs.
type Lead func(ctx context.Context, term uint64) error

// Run campaigns for the role until ctx ends, and runs lead while leading;
// after losing the lead it campaigns again. A lead that fails (a JetStream
// request timing out while the cluster elects its own leaders, say) gives
// the role up, and the candidate campaigns again after a pause: a replica
// does not die of what another may not meet. Run returns nil when ctx
// ends, or when lead returns nil on its own.
func (c Candidate) Run(ctx context.Context, lead Lead) error {
	status, err := c.KV.Status(ctx)
	if err != nil {
		return fmt.Errorf("leader %s: bucket %s: %w", c.Role, c.KV.Bucket(), err)
	}
	ttl := status.TTL()
	if ttl <= 0 {
		return fmt.Errorf("leader %s: bucket %s has no TTL: an election needs one (natsboot.Setup sets it to the lease TTL)", c.Role, c.KV.Bucket())
	}
	log := c.Log.With("role", c.Role, "id", c.ID)
	for {
		t, err := c.campaign(ctx, ttl, log)
		if err != nil {
			return nil // ctx ended
		}
		stop, err := t.run(ctx, lead, log)
		if stop {
			return err
		}
		if err != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retryLead(ttl)):
			}
		}
	}
}

// retryLead is how long a candidate whose lead failed waits before it
// campaigns again: a standby meanwhile may take over.
func retryLead(ttl time.Duration) time.Duration { return ttl / 3 }

// term is one spell of leadership.
type term struct {
	c   Candidate
	ttl time.Duration
	// won is the revision the key was won at; rev the newest written.
	won, rev uint64
	// deadline is when the lead must have ended: the send time of the
	// newest renewal that succeeded, plus the TTL, minus a margin.
	deadline time.Time
}

// margin is how much earlier than the key's expiry a leader stops.
func margin(ttl time.Duration) time.Duration { return ttl / 4 }

func (c Candidate) newTerm(ttl time.Duration, rev uint64, sent time.Time) *term {
	return &term{c: c, ttl: ttl, won: rev, rev: rev, deadline: sent.Add(ttl - margin(ttl))}
}

// campaign waits until the candidate holds the key; an error only when ctx
// ends.
func (c Candidate) campaign(ctx context.Context, ttl time.Duration, log *slog.Logger) (*term, error) {
	// Deletes (a leader that stops cleanly) wake the candidate at once;
	// expiries leave no trace in the bucket, so it polls as well.
	wctx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	var updates <-chan jetstream.KeyValueEntry
	if w, err := c.KV.Watch(wctx, c.Role, jetstream.UpdatesOnly()); err == nil {
		updates = w.Updates()
	}
	poll := time.NewTicker(ttl / 4)
	defer poll.Stop()
	seen := ""
	for {
		t, holder, err := c.try(ctx, ttl)
		switch {
		case t != nil:
			return t, nil
		case err != nil && ctx.Err() == nil:
			log.WarnContext(ctx, "campaign; trying again", "bucket", c.KV.Bucket(), "err", err)
		case holder != "" && holder != seen:
			seen = holder
			log.InfoContext(ctx, "standing by", "leader", holder)
			if c.Standby != nil {
				c.Standby()
			}
		}
		if err := wait(ctx, poll.C, updates); err != nil {
			return nil, err
		}
	}
}

// wait waits for the next poll, or a delete of the key; an error when ctx
// ends. The leader's renewals are puts: they do not wake a standby.
func wait(ctx context.Context, poll <-chan time.Time, updates <-chan jetstream.KeyValueEntry) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-poll:
			return nil
		case e, ok := <-updates:
			switch {
			case !ok:
				updates = nil // the watch ended; polling goes on
			case e != nil && e.Operation() != jetstream.KeyValuePut:
				return nil
			}
		}
	}
}

// try takes the key if it is free or holds this candidate's id; otherwise
// it returns who holds it.
func (c Candidate) try(ctx context.Context, ttl time.Duration) (*term, string, error) {
	rctx, cancel := context.WithTimeout(ctx, ttl/3)
	defer cancel()
	sent := time.Now()
	rev, err := c.KV.Create(rctx, c.Role, []byte(c.ID))
	if err == nil {
		return c.newTerm(ttl, rev, sent), "", nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, "", err
	}
	e, err := c.KV.Get(rctx, c.Role)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, "", nil // gone meanwhile: the next try takes it
	case err != nil:
		return nil, "", err
	case string(e.Value()) != c.ID:
		return nil, string(e.Value()), nil
	}
	// The key of an earlier term of this candidate (a renewal that failed
	// but was written, or a restart): nobody else leads, so take it back.
	sent = time.Now()
	if rev, err = c.KV.Update(rctx, c.Role, []byte(c.ID), e.Revision()); err != nil {
		return nil, "", err
	}
	return c.newTerm(ttl, rev, sent), "", nil
}

// errLapsed ends a lead whose renewal failed or whose deadline passed.
var errLapsed = errors.New("leadership lapsed")

// run runs lead for one term. stop says the candidate is done (ctx ended,
// or lead returned nil on its own); otherwise leadership was lost, or lead
// failed with err, and the candidate campaigns again.
func (t *term) run(ctx context.Context, lead Lead, log *slog.Logger) (stop bool, err error) {
	log = log.With("term", t.won)
	lctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan error, 1)
	log.InfoContext(ctx, "leading", "ttl", t.ttl)
	go func() { done <- lead(lctx, t.won) }()

	renew := time.NewTimer(t.ttl / 3)
	defer renew.Stop()
	expire := time.NewTimer(time.Until(t.deadline))
	defer expire.Stop()
	lapse := func(why string, args ...any) {
		cancel(errLapsed)
		<-done
		log.WarnContext(ctx, "standing down: "+why, args...)
	}
	for {
		select {
		case err := <-done:
			t.resign(log)
			if ctx.Err() != nil {
				log.InfoContext(ctx, "stopped leading")
				return true, nil
			}
			if err != nil {
				log.ErrorContext(ctx, "standing down: the lead failed; campaigning again", "err", err, "after", retryLead(t.ttl))
				return false, err
			}
			return true, nil
		case <-expire.C:
			lapse("lease deadline passed before a renewal succeeded", "deadline", t.deadline)
			return false, nil
		case <-renew.C:
			if err := t.renew(ctx); err != nil {
				if ctx.Err() != nil {
					continue // done follows
				}
				lapse("renewal failed", "err", err)
				return false, nil
			}
			expire.Reset(time.Until(t.deadline))
			renew.Reset(t.ttl / 3)
		}
	}
}

// renew writes the key again, expecting the revision written last, and
// moves the deadline on.
func (t *term) renew(ctx context.Context) error {
	rctx, cancel := context.WithDeadline(ctx, t.deadline)
	defer cancel()
	sent := time.Now()
	rev, err := t.c.KV.Update(rctx, t.c.Role, []byte(t.c.ID), t.rev)
	if err != nil {
		return err
	}
	t.rev, t.deadline = rev, sent.Add(t.ttl-margin(t.ttl))
	return nil
}

// resign deletes the key if it is still this term's, so that a standby
// takes over at once instead of after the TTL.
func (t *term) resign(log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), t.ttl/3)
	defer cancel()
	if err := t.c.KV.Delete(ctx, t.c.Role, jetstream.LastRevision(t.rev)); err != nil {
		log.WarnContext(ctx, "give up the lead; a standby takes over when the key expires", "err", err)
	}
}
