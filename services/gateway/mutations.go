package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/calls"
	"github.com/teatree-dev/teatree/pkg/catalog"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// headerIdempotencyKey is the HTTP-only request id header; the contract's
// own headers are in package subject.
const headerIdempotencyKey = "Idempotency-Key"

// headerRoom is what a mutation's headers may take of a NATS message; a
// body that leaves less than this under the server's max payload goes
// through the blob store instead.
const headerRoom = 4 << 10

// rowTypes are the content types an append or upsert body may have.
var rowTypes = map[string]bool{
	subject.ContentArrow:   true,
	subject.ContentParquet: true,
	subject.ContentCSV:     true,
	subject.ContentNDJSON:  true,
	subject.ContentJSON:    true,
}

// mutation is what an endpoint adds to the common path of every mutation.
type mutation struct {
	op string
	// header holds the op's contract headers; mutate adds the rest.
	header nats.Header
	// encode, when set, checks the whole body and returns the message body.
	// Without it the body goes out as it came, streamed to the blob store
	// when it is too large for one message.
	encode func([]byte) ([]byte, error)
	// compute sends the request to tt.call.fn.<model>, as a compute call,
	// instead of the model's tt.mut.<model>.<op>.
	compute bool
	// inline refuses a body too large for one message instead of
	// uploading it: its consumer reads no uploads.
	inline bool
}

// postRows answers POST /v1/models/{model}/tables/{table}/rows: an append,
// or an upsert with ?key=a,b.
func (g *Gateway) postRows(w http.ResponseWriter, r *http.Request) {
	table := r.PathValue("table")
	if err := subject.ValidateTable(table); err != nil {
		g.writeError(w, r, err)
		return
	}
	ct := r.Header.Get("Content-Type")
	if err := checkRowType(ct); err != nil {
		g.writeError(w, r, err)
		return
	}
	m := mutation{op: subject.OpAppend, header: nats.Header{}}
	m.header.Set(subject.HeaderTable, table)
	m.header.Set(subject.HeaderContentType, ct)
	if key := r.URL.Query().Get("key"); key != "" {
		if _, err := subject.ParseKey(key); err != nil {
			g.writeError(w, r, err)
			return
		}
		m.op = subject.OpUpsert
		m.header.Set(subject.HeaderKey, key)
	}
	g.mutate(w, r, m)
}

// postSQL answers POST /v1/models/{model}/sql.
func (g *Gateway) postSQL(w http.ResponseWriter, r *http.Request) {
	if err := checkJSONType(r.Header.Get("Content-Type")); err != nil {
		g.writeError(w, r, err)
		return
	}
	m := mutation{op: subject.OpSQL, header: nats.Header{}, encode: checkSQL}
	m.header.Set(subject.HeaderContentType, subject.ContentJSON)
	g.mutate(w, r, m)
}

// postCall answers POST /v1/models/{model}/calls/{function}; the body is
// the call's arguments as a JSON object. The arguments are checked against
// the function's definition before anything is published: a SQL function
// is called as a call mutation, a compute function on tt.call.fn.<model>.
func (g *Gateway) postCall(w http.ResponseWriter, r *http.Request) {
	if err := checkJSONType(r.Header.Get("Content-Type")); err != nil {
		g.writeError(w, r, err)
		return
	}
	store, model, name, err := g.functionTarget(r, "function")
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	d, err := store.Get(r.Context(), model, name)
	if err != nil {
		g.writeError(w, r, wrapNATS("read function "+name, err))
		return
	}
	m := mutation{op: subject.OpCall, header: nats.Header{}}
	m.header.Set(subject.HeaderContentType, subject.ContentJSON)
	if d.Kind != function.KindCompute {
		m.encode = func(b []byte) ([]byte, error) {
			if _, err := callArgs(d, b); err != nil {
				return nil, err
			}
			return encodeCall(name, b)
		}
		g.mutate(w, r, m)
		return
	}
	call, err := computeCall(name, r.URL.Query())
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	m.compute, m.inline = true, true
	m.encode = func(b []byte) ([]byte, error) {
		args, err := callArgs(d, b)
		if err != nil {
			return nil, err
		}
		call.Args = args
		return json.Marshal(call)
	}
	g.mutate(w, r, m)
}

// callArgs reads a call's arguments (a JSON object; none when the body is
// empty) and checks them against d. The arguments go on as the client
// sent them: defaults are filled in where the call is applied.
func callArgs(d *function.Definition, b []byte) (map[string]any, error) {
	args := map[string]any{}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := json.Unmarshal(b, &args); err != nil || args == nil {
			return nil, apierr.Errorf(apierr.InvalidArgument, "call %s: the body must be a JSON object of arguments", d.Name)
		}
	}
	if _, err := function.CheckArgs(d, args); err != nil {
		return nil, err
	}
	return args, nil
}

// computeCall is a compute call of function name with what the query asks for:
// ?deadline_ms= and ?min_seq=.
func computeCall(name string, q url.Values) (*calls.Call, error) {
	c := &calls.Call{Function: name}
	if s := q.Get("deadline_ms"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n <= 0 {
			return nil, apierr.Errorf(apierr.InvalidArgument, "deadline_ms=%q: want a positive number of milliseconds", s)
		}
		c.DeadlineMS = n
	}
	if s := q.Get("min_seq"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, apierr.Errorf(apierr.InvalidArgument, "min_seq=%q: want a stream sequence", s)
		}
		c.MinSeq = n
	}
	return c, nil
}

// mutate checks what every mutation needs, publishes it to TT_MUT and
// answers 202 Accepted, or the outcome with ?wait=applied. Every check
// happens before anything is published.
func (g *Gateway) mutate(w http.ResponseWriter, r *http.Request, m mutation) {
	ctx := r.Context()
	model := r.PathValue("model")
	if err := subject.ValidateModel(model); err != nil {
		g.writeError(w, r, err)
		return
	}
	id, err := requestID(r)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	wait, err := g.waitTime(r.URL.Query())
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if r.ContentLength > g.cfg.MaxBody {
		g.writeError(w, r, tooLarge(g.cfg.MaxBody))
		return
	}
	spec, err := g.spec(ctx, model)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	if spec.GetCreatedSeq() == catalog.PendingSeq {
		g.writeError(w, r, apierr.Errorf(apierr.Unavailable, "model %s is still being created; retry", model))
		return
	}
	// The subject names the request's principal, which the model records.
	by := principalName(ctx)
	subj := g.cfg.Names.MutBy(model, m.op, by)
	if m.compute {
		subj = g.cfg.Names.CallBy(model, by)
	}
	msg := newMessage(r, subj, model, id, m.header)
	if err := g.readBody(ctx, w, r, m, msg, blob.UploadKey(model, id)); err != nil {
		g.writeError(w, r, err)
		return
	}
	var sub *nats.Subscription
	if wait > 0 {
		// Subscribe before publishing, so the outcome cannot slip past.
		if sub, err = g.deps.NC.SubscribeSync(g.cfg.Names.NtfRequest(model, id)); err != nil {
			g.writeError(w, r, wrapNATS("subscribe to the outcome of "+id, err))
			return
		}
		defer sub.Unsubscribe()
	}
	ack, err := g.publish(ctx, msg)
	if err != nil {
		// The upload stays even now: a publish that timed out may have
		// been stored, and its message names the upload. Stale uploads are
		// left for a sweep.
		g.writeError(w, r, publishError(id, err))
		return
	}
	if sub == nil {
		g.writeMessage(w, r, http.StatusAccepted, &teatreev1.Accepted{RequestId: id, Seq: ack.Sequence, Duplicate: ack.Duplicate})
		return
	}
	n, err := g.awaitOutcome(ctx, sub, model, id, ack, wait)
	if err != nil {
		g.writeError(w, r, err)
		return
	}
	writeNotification(w, n.status(), n)
}

// Publish retries: a try that fails in a way that may have stored the
// message is made again with the same message, which JetStream drops as a
// duplicate if the first one was stored.
const (
	publishTries   = 4
	publishBackoff = 50 * time.Millisecond
)

// publish publishes a mutation, trying again after an error that leaves
// unknown whether the stream stored it (a timeout, no responders) while
// the request's context lasts.
func (g *Gateway) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	backoff := publishBackoff
	for try := 1; ; try++ {
		ack, err := g.deps.JS.PublishMsg(ctx, msg)
		if err == nil || !maybeStored(err) || try == publishTries || ctx.Err() != nil {
			return ack, err
		}
		g.log.WarnContext(ctx, "publish mutation; trying again with the same message id", "subject", msg.Subject,
			"msg_id", msg.Header.Get(subject.HeaderMsgID), "try", try, "err", err)
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// maybeStored reports whether a publish error leaves open that the stream
// stored the message: the ack, not the message, may be what was lost.
func maybeStored(err error) bool {
	return errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// publishError is the answer to a publish that failed on every try.
func publishError(id string, err error) error {
	what := fmt.Sprintf("publish request %s; retry with the same request id", id)
	if maybeStored(err) {
		return apierr.Errorf(apierr.Unavailable, "%s: %v", what, err)
	}
	return wrapNATS(what, err)
}

// newMessage is the message of request id of model on subj: the op's
// headers, the model-scoped message id, and what the client asked to pass
// on.
func newMessage(r *http.Request, subj, model, id string, header nats.Header) *nats.Msg {
	msg := &nats.Msg{Subject: subj, Header: header}
	msg.Header.Set(subject.HeaderMsgID, subject.MsgID(model, id))
	for _, h := range []string{subject.HeaderNotifyURL, subject.HeaderTraceparent} {
		if v := r.Header.Get(h); v != "" {
			msg.Header.Set(h, v)
		}
	}
	return msg
}

// readBody sets the body of msg: in the message when it fits, else in the
// blob store under upload, named by Tt-Body-Ref.
func (g *Gateway) readBody(ctx context.Context, w http.ResponseWriter, r *http.Request, m mutation, msg *nats.Msg, upload string) error {
	body := http.MaxBytesReader(w, r.Body, g.cfg.MaxBody)
	limit := g.deps.NC.MaxPayload() - headerRoom
	var rest io.Reader // the unread tail of a body too large for one message
	if m.encode != nil {
		b, err := io.ReadAll(body)
		if err != nil {
			return bodyError(err)
		}
		if msg.Data, err = m.encode(b); err != nil {
			return err
		}
	} else {
		b, err := io.ReadAll(io.LimitReader(body, limit+1))
		if err != nil {
			return bodyError(err)
		}
		if len(b) == 0 {
			return apierr.New(apierr.InvalidArgument, "empty body: send the rows")
		}
		msg.Data = b
		if int64(len(b)) > limit {
			rest = body
		}
	}
	if int64(len(msg.Data)) <= limit {
		return nil
	}
	if m.inline {
		return tooLarge(limit)
	}
	src := io.Reader(bytes.NewReader(msg.Data))
	if rest != nil {
		src = io.MultiReader(src, rest)
	}
	if _, err := g.deps.Blobs.Put(ctx, upload, src); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tooLarge(g.cfg.MaxBody)
		}
		return fmt.Errorf("upload body: %w", err)
	}
	msg.Data = nil
	msg.Header.Set(subject.HeaderBodyRef, upload)
	return nil
}

// requestID returns the client's request id, or a new one for a client
// that sent none.
func requestID(r *http.Request) (string, error) {
	for _, id := range []string{r.Header.Get(headerIdempotencyKey), r.Header.Get(subject.HeaderRequestID), r.URL.Query().Get("request_id")} {
		if id != "" {
			return id, subject.ValidateRequest(id)
		}
	}
	return nuid.Next(), nil
}

// waitTime returns how long a request asks to wait for its outcome; zero
// means it does not.
func (g *Gateway) waitTime(q url.Values) (time.Duration, error) {
	switch w := q.Get("wait"); w {
	case "":
		return 0, nil
	case subject.StatusApplied:
	default:
		return 0, apierr.Errorf(apierr.InvalidArgument, "wait=%q: the one value is %s", w, subject.StatusApplied)
	}
	d := g.cfg.WaitTimeout
	if s := q.Get("timeout"); s != "" {
		t, err := time.ParseDuration(s)
		if err != nil || t <= 0 {
			return 0, apierr.Errorf(apierr.InvalidArgument, "timeout=%q: want a positive duration such as 10s", s)
		}
		d = min(d, t)
	}
	return d, nil
}

func checkRowType(ct string) error {
	if ct == "" {
		return apierr.New(apierr.InvalidArgument, "rows need a Content-Type: "+rowTypeList())
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !rowTypes[mt] {
		return apierr.Errorf(apierr.InvalidArgument, "Content-Type %q: want one of %s", ct, rowTypeList())
	}
	return nil
}

func rowTypeList() string {
	return strings.Join([]string{subject.ContentArrow, subject.ContentParquet, subject.ContentCSV, subject.ContentNDJSON, subject.ContentJSON}, ", ")
}

// checkJSONType accepts no Content-Type or JSON.
func checkJSONType(ct string) error {
	if ct == "" {
		return nil
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != subject.ContentJSON {
		return apierr.Errorf(apierr.InvalidArgument, "Content-Type %q: want %s", ct, subject.ContentJSON)
	}
	return nil
}

// checkSQL checks an sql body and returns it unchanged.
func checkSQL(b []byte) ([]byte, error) {
	var m teatreev1.SqlMutation
	if err := wire.Unmarshal(b, &m); err != nil {
		return nil, apierr.Errorf(apierr.InvalidArgument, `sql body: want {"sql":..,"params":[..]}: %v`, err)
	}
	if strings.TrimSpace(m.GetSql()) == "" {
		return nil, apierr.New(apierr.InvalidArgument, "sql body: sql is empty")
	}
	return b, nil
}

// encodeCall wraps a call's arguments (a JSON object; none when empty) in
// the call mutation's body.
func encodeCall(function string, b []byte) ([]byte, error) {
	if function == "" {
		return nil, apierr.New(apierr.InvalidArgument, "call: the function name is empty")
	}
	args := &structpb.Struct{}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := wire.Unmarshal(b, args); err != nil {
			return nil, apierr.Errorf(apierr.InvalidArgument, "call %s: the body must be a JSON object of arguments: %v", function, err)
		}
	}
	out, err := wire.Marshal(&teatreev1.CallMutation{Function: function, Args: args})
	if err != nil {
		return nil, fmt.Errorf("encode call %s: %w", function, err)
	}
	return out, nil
}

// bodyError tells a body over the limit from one the client cut short.
func bodyError(err error) error {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return tooLarge(tooBig.Limit)
	}
	return apierr.Errorf(apierr.InvalidArgument, "read body: %v", err)
}

func tooLarge(limit int64) error {
	return apierr.Errorf(apierr.PayloadTooLarge, "body over %d bytes", limit)
}
