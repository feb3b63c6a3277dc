// Package outcome builds the terminal status of a request, the body of its
// status notification (docs/contract.md, "Notifications"): applied with the
// rows it affected, or failed with the contract's error code.
package outcome

import (
	"time"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// Applied is the status of a request of model that was applied at at.
func Applied(model, requestID, op string, seq uint64, at time.Time, rows int64) *teatreev1.RequestStatus {
	return &teatreev1.RequestStatus{
		RequestId: requestID, Model: model, Op: op, Status: subject.StatusApplied, Seq: seq,
		RowsAffected: &rows, AppliedAt: stamp(at),
	}
}

// Failed is the status of a request of model that ended failed at at with
// cause: its contract code and client message (internal for an error that
// carries none, see apierr.From).
func Failed(model, requestID, op string, seq uint64, at time.Time, cause error) *teatreev1.RequestStatus {
	code, text := apierr.From(cause)
	return &teatreev1.RequestStatus{
		RequestId: requestID, Model: model, Op: op, Status: subject.StatusFailed, Seq: seq,
		AppliedAt: stamp(at), Error: &teatreev1.Error{Code: string(code), Message: text},
	}
}

// stamp is the contract's time format: RFC 3339 in UTC, with nanoseconds.
func stamp(at time.Time) string { return at.UTC().Format(time.RFC3339Nano) }
