package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/auth"
)

// limitKind is which of a principal's limits a route counts against.
type limitKind int

const (
	limitNone limitKind = iota
	// limitQuery: queries at once (auth.Limits.Queries), for the whole
	// HTTP handling of the query.
	limitQuery
	// limitMutation: mutations and calls per second
	// (auth.Limits.MutationsPerSecond).
	limitMutation
)

// limits holds each principal's counters by name, so that they outlive a
// reload of the policy; the limits themselves are read from the principal
// of each request, so a changed limit takes effect at once.
type limits struct {
	mu     sync.Mutex
	byName map[string]*principalLimits
}

type principalLimits struct {
	queries  int // running now
	mutation *rate.Limiter
}

// refusal is a request refused for a limit, with when to try again.
type refusal struct {
	err        *apierr.Error
	retryAfter time.Duration
}

func (l *limits) of(name string) *principalLimits {
	if l.byName == nil {
		l.byName = map[string]*principalLimits{}
	}
	pl := l.byName[name]
	if pl == nil {
		pl = &principalLimits{}
		l.byName[name] = pl
	}
	return pl
}

// take counts one request of kind against pr's limits; release ends it.
// A request over a limit is refused instead.
func (l *limits) take(pr *auth.Principal, kind limitKind) (release func(), refused *refusal) {
	switch {
	case kind == limitQuery && pr.Limits.Queries > 0:
		return l.takeQuery(pr)
	case kind == limitMutation && pr.Limits.MutationsPerSecond > 0:
		return func() {}, l.takeMutation(pr, time.Now())
	}
	return func() {}, nil
}

func (l *limits) takeQuery(pr *auth.Principal) (func(), *refusal) {
	l.mu.Lock()
	defer l.mu.Unlock()
	pl := l.of(pr.Name)
	if pl.queries >= pr.Limits.Queries {
		return nil, &refusal{
			err: apierr.Errorf(apierr.ResourceExhausted,
				"principal %s already runs %d queries, its limit of queries at once; retry when one ends", pr.Name, pr.Limits.Queries),
			// A query's length is unknown: a second is a fair guess.
			retryAfter: time.Second,
		}
	}
	pl.queries++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			pl.queries--
		})
	}, nil
}

func (l *limits) takeMutation(pr *auth.Principal, now time.Time) *refusal {
	perSecond := pr.Limits.MutationsPerSecond
	burst := int(math.Ceil(perSecond))
	l.mu.Lock()
	pl := l.of(pr.Name)
	if pl.mutation == nil {
		pl.mutation = rate.NewLimiter(rate.Limit(perSecond), burst)
	}
	lim := pl.mutation
	l.mu.Unlock()
	if lim.Limit() != rate.Limit(perSecond) || lim.Burst() != burst {
		lim.SetLimitAt(now, rate.Limit(perSecond))
		lim.SetBurstAt(now, burst)
	}
	res := lim.ReserveN(now, 1)
	wait := res.DelayFrom(now)
	if wait == 0 {
		return nil
	}
	res.CancelAt(now)
	return &refusal{
		err: apierr.Errorf(apierr.ResourceExhausted,
			"principal %s is over its limit of %g mutations and calls per second", pr.Name, perSecond),
		retryAfter: wait,
	}
}

// writeLimited answers a limit's refusal: 429 resource_exhausted with
// Retry-After in whole seconds, at least 1.
func (g *Gateway) writeLimited(w http.ResponseWriter, r *http.Request, rf *refusal) {
	secs := max(1, int(math.Ceil(rf.retryAfter.Seconds())))
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	g.writeError(w, r, apierr.New(rf.err.Code, fmt.Sprintf("%s; retry after %d s", rf.err.Message, secs)))
}
