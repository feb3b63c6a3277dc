package gateway

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// keepAlive is how often an idle event stream gets a comment line, so
// proxies and clients can tell it is alive.
const keepAlive = 15 * time.Second

// getEvents answers GET /v1/models/{model}/events with the model's
// notifications as Server-Sent Events: from a point in TT_NTF's history,
// then live, with no gap and no duplicate. Each event's id is its stream
// sequence. Where to start:
//   - Last-Event-ID: N (as a reconnecting EventSource sends it): right after N;
//   - ?from_seq=N: at N;
//   - ?since=10m or ?since=<RFC 3339 time>: at that time;
//   - otherwise: the start of retention (a late joiner replays everything kept).
//
// The event name is the notification's kind (status, snapshot, result);
// a body that is not text (Arrow IPC) is sent base64-encoded, with the
// event name suffixed ".base64".
func (g *Gateway) getEvents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	model := r.PathValue("model")
	if err := subject.ValidateModel(model); err != nil {
		g.writeError(w, r, err)
		return
	}
	if _, err := g.spec(ctx, model); err != nil {
		g.writeError(w, r, err)
		return
	}
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{g.cfg.Names.NtfModel(model)}}
	if err := startFrom(r, &cfg); err != nil {
		g.writeError(w, r, err)
		return
	}
	cons, err := g.deps.JS.OrderedConsumer(ctx, g.cfg.Names.NtfStream(), cfg)
	if err != nil {
		g.writeError(w, r, wrapNATS("follow notifications of "+model, err))
		return
	}
	iter, err := cons.Messages()
	if err != nil {
		g.writeError(w, r, wrapNATS("follow notifications of "+model, err))
		return
	}
	msgs := make(chan jetstream.Msg, 64)
	go func() {
		defer close(msgs)
		for {
			msg, err := iter.Next()
			if err != nil {
				return
			}
			select {
			case msgs <- msg:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer iter.Stop()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_ = rc.Flush()
	tick := time.NewTicker(keepAlive)
	defer tick.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.closing:
			return
		case <-tick.C:
			buf.WriteString(": keep-alive\n\n")
		case msg, ok := <-msgs:
			if !ok {
				return
			}
			writeEvent(&buf, msg)
			// Send what else is already waiting in the same write.
			for more := true; more && buf.Len() < 1<<20; {
				select {
				case msg, ok := <-msgs:
					if !ok {
						more = false
						break
					}
					writeEvent(&buf, msg)
				default:
					more = false
				}
			}
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return
		}
		buf.Reset()
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// startFrom sets where an event stream starts from the request.
func startFrom(r *http.Request, cfg *jetstream.OrderedConsumerConfig) error {
	q := r.URL.Query()
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		seq, err := strconv.ParseUint(last, 10, 64)
		if err != nil {
			return apierr.Errorf(apierr.InvalidArgument, "Last-Event-ID %q: want the id of an event, a stream sequence", last)
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq+1
		return nil
	}
	if from := q.Get("from_seq"); from != "" {
		seq, err := strconv.ParseUint(from, 10, 64)
		if err != nil || seq == 0 {
			return apierr.Errorf(apierr.InvalidArgument, "from_seq %q: want a stream sequence from 1", from)
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
		return nil
	}
	if since := q.Get("since"); since != "" {
		t, err := time.Parse(time.RFC3339, since)
		if err != nil {
			d, derr := time.ParseDuration(since)
			if derr != nil || d <= 0 {
				return apierr.Errorf(apierr.InvalidArgument, "since %q: want a duration such as 10m or an RFC 3339 time", since)
			}
			t = time.Now().Add(-d)
		}
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
		return nil
	}
	cfg.DeliverPolicy = jetstream.DeliverAllPolicy
	return nil
}

// writeEvent frames one notification as a Server-Sent Event.
func writeEvent(buf *bytes.Buffer, msg jetstream.Msg) {
	meta, err := msg.Metadata()
	if err != nil {
		return
	}
	kind := eventKind(msg)
	body := msg.Data()
	if msg.Headers().Get(subject.HeaderContentType) == subject.ContentArrow {
		kind += ".base64"
		body = []byte(base64.StdEncoding.EncodeToString(body))
	}
	fmt.Fprintf(buf, "id: %d\nevent: %s\n", meta.Sequence.Stream, kind)
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
		buf.WriteString("data: ")
		buf.WriteString(strings.TrimSuffix(line, "\r"))
		buf.WriteByte('\n')
	}
	buf.WriteByte('\n')
}

// eventKind names a notification: snapshot, result (a page of a durable
// query's result) or status.
func eventKind(msg jetstream.Msg) string {
	switch {
	case msg.Headers().Get(subject.HeaderVersion) != "" && msg.Headers().Get(subject.HeaderRequestID) == "":
		return "snapshot"
	case msg.Headers().Get(subject.HeaderStatus) == subject.StatusResult:
		return "result"
	default:
		return "status"
	}
}
