package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// writeError answers err as {"error":{"code":..,"message":..}} with the
// status of its contract code. This is the one place where errors become
// codes.
func (g *Gateway) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := apierr.From(err)
	if code == apierr.Internal {
		g.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeErrorBody(w, code.HTTPStatus(), code, msg)
}

func writeErrorBody(w http.ResponseWriter, status int, code apierr.Code, msg string) {
	b, err := wire.Marshal(&teatreev1.ErrorReply{Error: &teatreev1.Error{Code: string(code), Message: msg}})
	if err != nil {
		// Two strings always marshal; keep the status if they ever do not.
		b = []byte(`{"error":{"code":"internal","message":"encode error reply"}}`)
	}
	writeBody(w, status, "application/json", b)
}

// writeMessage answers m as JSON.
func (g *Gateway) writeMessage(w http.ResponseWriter, r *http.Request, status int, m proto.Message) {
	b, err := wire.Marshal(m)
	if err != nil {
		g.writeError(w, r, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().Name(), err))
		return
	}
	writeBody(w, status, "application/json", b)
}

func writeText(w http.ResponseWriter, status int, text string) {
	writeBody(w, status, "text/plain; charset=utf-8", []byte(text+"\n"))
}

func writeBody(w http.ResponseWriter, status int, contentType string, b []byte) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b) // a failed write means the client went away: nothing left to tell it
}

// wrapNATS says what was being done when a NATS call failed. Errors that
// mean NATS or JetStream could not be reached in time become unavailable,
// so that clients see a retryable 503 instead of a 500; an *apierr.Error
// inside err keeps its code.
func wrapNATS(what string, err error) error {
	if errors.Is(err, nats.ErrNoResponders) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return apierr.Errorf(apierr.Unavailable, "%s: %v", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// routeErrors answers requests that match no route in the contract's error
// shape: 404 not_found for an unknown path and 405 (with Allow) for a
// known path with the wrong method. Matched requests go to mux unchanged.
func routeErrors(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r) // sets the path values that Handler does not
			return
		}
		h.ServeHTTP(&routeErrorWriter{ResponseWriter: w, r: r}, r)
	})
}

// routeErrorWriter replaces the mux's plain-text 404 and 405 bodies.
type routeErrorWriter struct {
	http.ResponseWriter
	r     *http.Request
	wrote bool
}

func (rw *routeErrorWriter) WriteHeader(status int) {
	if rw.wrote {
		return
	}
	rw.wrote = true
	if status == http.StatusMethodNotAllowed {
		writeErrorBody(rw.ResponseWriter, status, apierr.InvalidArgument,
			fmt.Sprintf("method %s not allowed on %s (allowed: %s)", rw.r.Method, rw.r.URL.Path, rw.Header().Get("Allow")))
		return
	}
	writeErrorBody(rw.ResponseWriter, http.StatusNotFound, apierr.NotFound,
		fmt.Sprintf("no such endpoint: %s %s", rw.r.Method, rw.r.URL.Path))
}

func (rw *routeErrorWriter) Write(b []byte) (int, error) {
	rw.WriteHeader(http.StatusNotFound)
	return len(b), nil // the mux's own text is replaced by the JSON above
}
