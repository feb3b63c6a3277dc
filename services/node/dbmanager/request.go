package dbmanager

import (
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/blob"
	"github.com/teatree-dev/teatree/pkg/function"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// request is one mutation message of the log, parsed but not yet applied.
type request struct {
	seq   uint64
	id    string
	op    string
	table string
	keys  []string
	// replace is an append's Tt-Mode: replace: the table's rows are
	// deleted first.
	replace     bool
	contentType string
	// notifyURL is the request's webhook (Tt-Notify-Url), if any.
	notifyURL string
	// principal is who sent the request, the subject's last token if it
	// has one.
	principal string
	// upload is the blob the body was uploaded to (Tt-Body-Ref), once
	// checked to be this request's own: uploads/<model>/<request id>.
	upload string
	body   []byte
	// invalid is set when the message is unusable whatever the model holds:
	// it ends failed without touching the database.
	invalid error

	// decoded caches the body's decoded form across retries of a batch.
	decoded *decodedBody
	// spool names the spool file of a combined request ("": the seq).
	spool string
	// alone is set once applying r together with others failed.
	alone bool
}

// parseRequest reads a mutation message. A bad message becomes a request
// whose invalid field says why; only a message without JetStream metadata
// (which the consumer always gives) is an error.
func parseRequest(names subject.Names, msg jetstream.Msg) (*request, error) {
	meta, err := msg.Metadata()
	if err != nil {
		return nil, fmt.Errorf("message metadata: %w", err)
	}
	h := msg.Headers()
	r := &request{seq: meta.Sequence.Stream, body: msg.Data(), notifyURL: h.Get(subject.HeaderNotifyURL)}
	m, ok := names.ParseMut(msg.Subject())
	model, op := m.Model, m.Op
	r.op, r.principal = op, m.Principal
	if msgID := h.Get(subject.HeaderMsgID); msgID == "" {
		r.id = subject.SeqRequestID(r.seq)
	} else if id, err := subject.RequestFromMsgID(model, msgID); err != nil {
		// The notification subject needs a valid token: fall back to the
		// sequence so the client can still find out what happened.
		r.id = subject.SeqRequestID(r.seq)
		r.invalid = err
		return r, nil
	} else {
		// Request ids belong to their model: "<model>.<id>" is request id
		// <id>, so two models may use the same one.
		r.id = id
	}
	if !ok {
		r.invalid = apierr.Errorf(apierr.InvalidArgument, "subject %q: want %s", msg.Subject(), names.Mut("<model>", "<op>")+"[.<principal>]")
		return r, nil
	}
	r.contentType = mediaType(h.Get(subject.HeaderContentType))
	if ref := h.Get(subject.HeaderBodyRef); ref != "" {
		// The reference comes from the client, and the blob it names is
		// read and then deleted: only the request's own upload will do.
		if want := blob.UploadKey(model, r.id); ref != want {
			r.invalid = apierr.Errorf(apierr.InvalidArgument, "%s %q: a request's body can only be its own upload, %s", subject.HeaderBodyRef, ref, want)
			return r, nil
		}
		r.upload = ref
	}
	switch op {
	case subject.OpAppend, subject.OpUpsert:
		r.table = h.Get(subject.HeaderTable)
		if r.table == "" {
			r.invalid = apierr.Errorf(apierr.InvalidArgument, "%s needs the %s header", op, subject.HeaderTable)
		} else if err := subject.ValidateTable(r.table); err != nil {
			r.invalid = err
		}
		if op == subject.OpUpsert && r.invalid == nil {
			r.keys, r.invalid = subject.ParseKey(h.Get(subject.HeaderKey))
		}
		switch mode := h.Get(subject.HeaderMode); {
		case r.invalid != nil || mode == "":
		case op == subject.OpAppend && mode == function.ModeReplace:
			r.replace = true
		default:
			r.invalid = apierr.Errorf(apierr.InvalidArgument, "%s %q: the one mode is %s, on append", subject.HeaderMode, mode, function.ModeReplace)
		}
	case subject.OpSQL, subject.OpCall:
		if r.contentType != "" && r.contentType != subject.ContentJSON {
			r.invalid = apierr.Errorf(apierr.InvalidArgument, "%s takes %s, not %q", op, subject.ContentJSON, r.contentType)
		}
	default:
		r.invalid = apierr.Errorf(apierr.InvalidArgument, "unknown op %q: want append, upsert, sql or call", op)
	}
	if r.invalid == nil && len(r.body) == 0 && r.upload == "" {
		r.invalid = apierr.New(apierr.InvalidArgument, "empty body")
	}
	return r, nil
}

// mediaType strips parameters such as "; charset=utf-8".
func mediaType(ct string) string {
	ct, _, _ = strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(ct))
}
