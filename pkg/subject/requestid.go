package subject

import (
	"strconv"
	"strings"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// Request ids belong to their model. JetStream deduplicates Nats-Msg-Id
// across the whole TT_MUT stream, so a mutation's message id is
// "<model>.<request id>": the same request id on two models is two
// requests, and a retry on one model is still dropped as a duplicate. An id
// without the model prefix is accepted as the request id itself; such ids
// share one duplicate window across every model.

// SeqPrefix starts the request id teatree gives a mutation published
// without one (seq-<stream sequence>); clients may not use it.
const SeqPrefix = "seq-"

// MsgID is the Nats-Msg-Id of request id on model: <model>.<request id>.
func MsgID(model, requestID string) string { return model + "." + requestID }

// RequestFromMsgID returns the request id of a mutation of model whose
// Nats-Msg-Id is msgID: the part after "<model>." when the id has the
// model prefix, else the whole id. An id for another model, a malformed
// one, or one using the reserved seq- prefix is invalid_argument.
func RequestFromMsgID(model, msgID string) (string, error) {
	id := msgID
	if prefix, rest, found := strings.Cut(msgID, "."); found {
		if prefix != model {
			return "", apierr.Errorf(apierr.InvalidArgument, "%s %q: a prefixed request id must start with this request's model, %q", HeaderMsgID, msgID, model+".")
		}
		id = rest
	}
	if err := ValidateRequest(id); err != nil {
		return "", err
	}
	return id, nil
}

// ValidateRequest checks a request id a client chose: the contract's rule,
// and not the reserved seq- prefix.
func ValidateRequest(id string) error {
	if err := ValidateRequestRef(id); err != nil {
		return err
	}
	if strings.HasPrefix(id, SeqPrefix) {
		return apierr.Errorf(apierr.InvalidArgument, "request id %q: the prefix %q is reserved for requests published without an id", id, SeqPrefix)
	}
	return nil
}

// ValidateRequestRef checks a request id that names an existing request,
// such as GET .../requests/{id}: the seq- ids teatree gives are allowed.
func ValidateRequestRef(id string) error {
	if !requestRE.MatchString(id) {
		return apierr.Errorf(apierr.InvalidArgument, "request id %q: want 1-64 of A-Z, a-z, 0-9, _ and -", id)
	}
	return nil
}

// SeqRequestID is the request id of a mutation published without one.
func SeqRequestID(seq uint64) string { return SeqPrefix + strconv.FormatUint(seq, 10) }
