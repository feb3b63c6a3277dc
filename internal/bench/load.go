package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/subject"
)

// Publishers and the requests each keeps in flight in the closed-loop
// small-mutation runs, teatree and baseline alike.
const (
	publishers = 16
	window     = 32
)

// loadResult is what a load run measured.
type loadResult struct {
	// done counts the requests that got a terminal notification, failed
	// those of them that were not applied, codes the failures by code.
	done, failed int
	codes        map[string]int
	// issued counts the requests sent; duplicates the terminal
	// notifications beyond the first of a request.
	issued, duplicates int
	// recovered notifications were found in TT_NTF, not delivered in time.
	recovered int
	elapsed   time.Duration
	lats      []time.Duration
}

func (l loadResult) rate() float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return float64(l.done) / l.elapsed.Seconds()
}

// smallMutation is one single-row NDJSON append, as a message.
func smallMutation(names subject.Names, subj, model, id string, k int) *nats.Msg {
	if subj == "" {
		subj = names.Mut(model, subject.OpAppend)
	}
	m := nats.NewMsg(subj)
	m.Header.Set(subject.HeaderMsgID, subject.MsgID(model, id))
	m.Header.Set(subject.HeaderTable, "events")
	m.Header.Set(subject.HeaderContentType, subject.ContentNDJSON)
	m.Data = fmt.Appendf(nil, `{"k":%d,"model":%q,"note":"a small mutation"}`+"\n", k, model)
	return m
}

// note says what of a run of n requests, sent for at most phase, did not
// go as asked ("" when all did).
func (l loadResult) note(n int, phase time.Duration) string {
	var parts []string
	if l.issued < n {
		parts = append(parts, fmt.Sprintf("Only %d of %d requests were sent within %s.", l.issued, n, phase))
	}
	if l.failed > 0 {
		var codes []string
		for code, n := range l.codes {
			codes = append(codes, fmt.Sprintf("%s ×%d", code, n))
		}
		slices.Sort(codes)
		parts = append(parts, fmt.Sprintf("%d requests failed (%s).", l.failed, strings.Join(codes, ", ")))
	}
	if l.recovered > 0 {
		parts = append(parts, fmt.Sprintf("%d notifications not delivered to the loaded client in time were found in TT_NTF afterwards.", l.recovered))
	}
	return strings.Join(parts, " ")
}

// notifications are a mutation scenario's count of terminal
// notifications: the contract wants exactly one per request.
func (l loadResult) notifications() *Notifications {
	return &Notifications{Requests: l.issued, Notified: l.done, Duplicates: l.duplicates}
}

// tracker matches terminal notifications to the requests of one run by
// the run's request-id prefix.
type tracker struct {
	prefix string
	starts []atomic.Int64 // unix nanos by request number
	// seen counts the terminal notifications of each request.
	seen       []atomic.Int32
	issued     atomic.Int64
	duplicates atomic.Int64
	mu         sync.Mutex
	lats       []time.Duration
	failed     int
	codes      map[string]int
	last       time.Time
	pending    atomic.Int64
	// recovered counts notifications found in the stream, not delivered.
	recovered atomic.Int64
	release   func(k int)
	sub       *nats.Subscription
}

func newTracker(nc *nats.Conn, names subject.Names, prefix string, n int, release func(k int)) (*tracker, error) {
	tr := &tracker{prefix: prefix + "-", starts: make([]atomic.Int64, n), seen: make([]atomic.Int32, n),
		lats: make([]time.Duration, 0, n), release: release}
	sub, err := nc.Subscribe(names.NtfAll(), tr.on)
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1)
	tr.sub = sub
	return tr, nc.Flush()
}

func (tr *tracker) id(k int) string { return tr.prefix + strconv.Itoa(k) }

// issue records that request k is sent now; its latency counts from at.
func (tr *tracker) issue(k int, at time.Time) {
	tr.issued.Add(1)
	tr.pending.Add(1)
	tr.starts[k].Store(at.UnixNano())
}

// unissue takes back request k, whose publish failed.
func (tr *tracker) unissue(k int) {
	tr.issued.Add(-1)
	tr.pending.Add(-1)
	tr.starts[k].Store(0)
}

func (tr *tracker) on(msg *nats.Msg) {
	now := time.Now()
	id := msg.Header.Get(subject.HeaderRequestID)
	ks, ok := strings.CutPrefix(id, tr.prefix)
	if !ok {
		return
	}
	k, err := strconv.Atoi(ks)
	if err != nil || k < 0 || k >= len(tr.starts) {
		return
	}
	start := tr.starts[k].Load()
	if start == 0 {
		return // not sent by this run
	}
	if tr.seen[k].Add(1) > 1 {
		tr.duplicates.Add(1)
		return
	}
	tr.mu.Lock()
	tr.lats = append(tr.lats, now.Sub(time.Unix(0, start)))
	if msg.Header.Get(subject.HeaderStatus) != subject.StatusApplied {
		tr.failed++
		if tr.codes == nil {
			tr.codes = map[string]int{}
		}
		tr.codes[errorCode(msg.Data)]++
	}
	tr.last = now
	tr.mu.Unlock()
	tr.pending.Add(-1)
	if tr.release != nil {
		tr.release(k)
	}
}

// wait waits until every issued request has its notification, or timeout.
// Then it looks for the missing ones in TT_NTF itself: a loaded client can
// miss core deliveries (a slow consumer), which loses nothing. Those count
// as done when found, with the time of the look as their latency.
func (tr *tracker) wait(ctx context.Context, t *teatree, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for tr.pending.Load() > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return tr.recover(ctx, t, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// errorCode is the error code of a failed status notification's body.
func errorCode(body []byte) string {
	var st struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &st) != nil || st.Error.Code == "" {
		return "unknown"
	}
	return st.Error.Code
}

func (tr *tracker) recover(ctx context.Context, t *teatree, timeout time.Duration) error {
	ntf, err := t.js.Stream(ctx, t.names.NtfStream())
	if err != nil {
		return err
	}
	missing := 0
	for k := range tr.starts {
		if tr.starts[k].Load() == 0 || tr.seen[k].Load() > 0 {
			continue
		}
		raw, err := ntf.GetLastMsgForSubject(ctx, t.names.NtfRequest("*", tr.id(k)))
		if err != nil {
			missing++
			continue
		}
		tr.recovered.Add(1)
		tr.on(&nats.Msg{Subject: raw.Subject, Header: raw.Header, Data: raw.Data})
	}
	if missing > 0 {
		return fmt.Errorf("%d requests without a notification in %s after %s", missing, t.names.NtfStream(), timeout)
	}
	return nil
}

func (tr *tracker) result(start time.Time) loadResult {
	tr.sub.Unsubscribe()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return loadResult{done: len(tr.lats), failed: tr.failed, codes: tr.codes, issued: int(tr.issued.Load()), duplicates: int(tr.duplicates.Load()),
		recovered: int(tr.recovered.Load()), elapsed: tr.last.Sub(start), lats: tr.lats}
}

// closedLoop sends n small mutations spread over models from 16
// publishers, each with at most 32 in flight, and measures each one from
// submit to its terminal notification.
func (r *runner) closedLoop(ctx context.Context, t *teatree, models []string, n int, prefix string, wait time.Duration) (loadResult, error) {
	return r.closedLoopFor(ctx, t, models, n, prefix, r.sz.maxPhase, wait)
}

// closedLoopFor is closedLoop sending for at most send.
func (r *runner) closedLoopFor(ctx context.Context, t *teatree, models []string, n int, prefix string, send, wait time.Duration) (loadResult, error) {
	sems := make([]chan struct{}, publishers)
	for i := range sems {
		sems[i] = make(chan struct{}, window)
	}
	tr, err := newTracker(t.nc, t.names, prefix, n, func(k int) { <-sems[k%publishers] })
	if err != nil {
		return loadResult{}, err
	}
	deadline := time.Now().Add(send)
	start := time.Now()
	var wg sync.WaitGroup
	var pubErr atomic.Pointer[error]
	for p := range publishers {
		wg.Go(func() {
			for k := p; k < n && time.Now().Before(deadline) && ctx.Err() == nil; k += publishers {
				sems[p] <- struct{}{}
				tr.issue(k, time.Now())
				model := models[k%len(models)]
				if _, err := t.js.PublishMsgAsync(smallMutation(t.names, "", model, tr.id(k), k)); err != nil {
					pubErr.Store(&err)
					tr.unissue(k)
					<-sems[p]
					return
				}
			}
		})
	}
	wg.Wait()
	if p := pubErr.Load(); p != nil {
		return loadResult{}, *p
	}
	if err := tr.wait(ctx, t, wait); err != nil {
		return loadResult{}, err
	}
	return tr.result(start), nil
}

// openLoop sends small mutations at a fixed rate for d, each measured
// from when it was due, so that a stall counts against every request it
// delays.
func (r *runner) openLoop(ctx context.Context, t *teatree, model string, rate float64, d time.Duration, prefix string) (loadResult, error) {
	n := int(rate * d.Seconds())
	tr, err := newTracker(t.nc, t.names, prefix, n, nil)
	if err != nil {
		return loadResult{}, err
	}
	start := time.Now()
	for k := range n {
		due := start.Add(time.Duration(float64(k) / rate * float64(time.Second)))
		if wait := time.Until(due); wait > time.Millisecond {
			time.Sleep(wait)
		}
		if ctx.Err() != nil {
			return loadResult{}, ctx.Err()
		}
		tr.issue(k, due)
		if _, err := t.js.PublishMsgAsync(smallMutation(t.names, "", model, tr.id(k), k)); err != nil {
			return loadResult{}, err
		}
	}
	if err := tr.wait(ctx, t, r.sz.maxPhase); err != nil {
		return loadResult{}, err
	}
	return tr.result(start), nil
}

// baselineLoop publishes the same messages with nats.go's async publish
// to a file-storage stream on a bare server, 16 publishers with 32 in
// flight each, measuring each from publish to its acknowledgement.
func (r *runner) baselineLoop(ctx context.Context, syncAlways bool, models []string, n int) (loadResult, error) {
	_, _, js, stop, err := r.startJetStream("small-mutations", syncAlways)
	if err != nil {
		return loadResult{}, err
	}
	defer stop()
	return r.publishLoop(ctx, js, 1, models, n)
}

// publishLoop is the baseline's load: a file-storage stream of replicas
// replicas, and the messages published to it as baselineLoop says.
func (r *runner) publishLoop(ctx context.Context, js jetstream.JetStream, replicas int, models []string, n int) (loadResult, error) {
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "BASELINE", Subjects: []string{"baseline.>"},
		Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute, Replicas: replicas}); err != nil {
		return loadResult{}, err
	}
	names := subject.Default()
	type inflight struct {
		ack   jetstream.PubAckFuture
		start time.Time
	}
	var mu sync.Mutex
	var lats []time.Duration
	var last time.Time
	var failed int
	deadline := time.Now().Add(r.sz.maxPhase)
	start := time.Now()
	var wg sync.WaitGroup
	for p := range publishers {
		acks := make(chan inflight, window)
		wg.Go(func() {
			for f := range acks {
				var ok bool
				select {
				case <-f.ack.Ok():
					ok = true
				case <-f.ack.Err():
				}
				now := time.Now()
				mu.Lock()
				lats = append(lats, now.Sub(f.start))
				last = now
				if !ok {
					failed++
				}
				mu.Unlock()
			}
		})
		wg.Go(func() {
			defer close(acks)
			for k := p; k < n && time.Now().Before(deadline) && ctx.Err() == nil; k += publishers {
				model := models[k%len(models)]
				msg := smallMutation(names, "baseline."+model+".append", model, "b-"+strconv.Itoa(k), k)
				at := time.Now()
				f, err := js.PublishMsgAsync(msg)
				if err != nil {
					return
				}
				acks <- inflight{f, at}
			}
		})
	}
	wg.Wait()
	return loadResult{done: len(lats), failed: failed, elapsed: last.Sub(start), lats: lats}, nil
}
