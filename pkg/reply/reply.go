// Package reply answers NATS requests (tt.query, tt.result, tt.api) in the
// contract's shape.
package reply

import (
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Error answers req with headers Tt-Status: failed and Tt-Error-Code, and
// the body {"error":{"code":..,"message":..}}.
func Error(req micro.Request, err error) {
	h, body := Failure(err)
	_ = req.Respond(body, micro.WithHeaders(micro.Headers(h)))
}

// Failure is the headers and body of a failed reply (see Error), for a
// responder outside a micro service.
func Failure(err error) (nats.Header, []byte) {
	code, msg := apierr.From(err)
	body, _ := wire.Marshal(&teatreev1.ErrorReply{Error: &teatreev1.Error{Code: string(code), Message: msg}})
	h := nats.Header{}
	h.Set(subject.HeaderStatus, subject.StatusFailed)
	h.Set(subject.HeaderErrorCode, string(code))
	h.Set(subject.HeaderContentType, subject.ContentJSON)
	return h, body
}
