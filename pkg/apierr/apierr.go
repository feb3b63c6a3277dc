// Package apierr carries the contract's error codes (CONTRACT.md,
// "Notifications") through teatree, and maps them to HTTP at the edge.
package apierr

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Code is one of the contract's error codes.
type Code string

// The contract's error codes.
const (
	InvalidArgument  Code = "invalid_argument"
	NotFound         Code = "not_found"
	PermissionDenied Code = "permission_denied"
	SchemaMismatch   Code = "schema_mismatch"
	SQLError         Code = "sql_error"
	PayloadTooLarge  Code = "payload_too_large"
	Unavailable      Code = "unavailable"
	DeadlineExceeded Code = "deadline_exceeded"
	Internal         Code = "internal"
	// ResourceExhausted: the request needs more of a node's budget (DuckDB
	// memory) than it may have, even applied alone.
	ResourceExhausted Code = "resource_exhausted"
	// Cancelled: a compute call was cancelled before it ended.
	Cancelled Code = "cancelled"
	// Unauthenticated: the request carries no credentials, or none the
	// policy knows (or they expired).
	Unauthenticated Code = "unauthenticated"
)

// HTTPStatus maps a code to the HTTP status the contract gives it.
func (c Code) HTTPStatus() int {
	switch c {
	case InvalidArgument:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case Unauthenticated:
		return http.StatusUnauthorized
	case PermissionDenied:
		return http.StatusForbidden
	case SchemaMismatch, Cancelled:
		return http.StatusConflict
	case SQLError:
		return http.StatusUnprocessableEntity
	case PayloadTooLarge:
		return http.StatusRequestEntityTooLarge
	case Unavailable:
		return http.StatusServiceUnavailable
	case DeadlineExceeded:
		return http.StatusGatewayTimeout
	case ResourceExhausted:
		return http.StatusTooManyRequests
	default:
		return http.StatusInternalServerError
	}
}

// Error is an error with a contract code and a message meant for the client.
type Error struct {
	Code    Code
	Message string
}

// New returns an *Error.
func New(code Code, message string) *Error { return &Error{Code: code, Message: message} }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// From returns the code and client message of err: its own when err wraps an
// *Error, deadline_exceeded for a context deadline, internal otherwise.
func From(err error) (Code, string) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Code, e.Message
	case errors.Is(err, context.DeadlineExceeded):
		return DeadlineExceeded, err.Error()
	default:
		return Internal, err.Error()
	}
}
