// Package calls is the wire shape of compute calls, as the contract's
// "Compute calls" and "Workers" describe them: the call a client sends,
// the job a worker gets, the events workers and teatree report, the
// call's record in tt_calls and a worker's heartbeat in tt_compute.
package calls

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/teatree-dev/teatree/pkg/apierr"
)

// Call is the body of tt.call.fn.<model>.
type Call struct {
	Function   string         `json:"function"`
	Args       map[string]any `json:"args,omitempty"`
	DeadlineMS int64          `json:"deadline_ms,omitempty"`
	MinSeq     uint64         `json:"min_seq,omitempty"`
	PageRows   int            `json:"page_rows,omitempty"`
}

// DefaultPageRows is a result page's rows when the call says nothing.
const DefaultPageRows = 10000

// Job is what a worker gets on tt.call.<route>.<model>.
type Job struct {
	CallID      string         `json:"call_id"`
	Model       string         `json:"model"`
	Function    string         `json:"function"`
	Handler     string         `json:"handler"`
	Args        map[string]any `json:"args"`
	MaxAttempts int            `json:"max_attempts"`
	Deadline    string         `json:"deadline"`
	QueuedAt    string         `json:"queued_at"`
	Input       Version        `json:"input"`
	Reads       []Version      `json:"reads,omitempty"`
	Results     []Result       `json:"results"`
	PageRows    int            `json:"page_rows"`
	// Principal is who sent the call (the last token of its subject),
	// empty when it named nobody.
	Principal string `json:"principal,omitempty"`
}

// Version is one published version a job reads.
type Version struct {
	Model      string  `json:"model"`
	Version    uint64  `json:"version"`
	AppliedSeq uint64  `json:"applied_seq"`
	DuckDB     Object  `json:"duckdb"`
	Tables     []Table `json:"tables,omitempty"`
}

// Table is one table of a version, with its Parquet file.
type Table struct {
	Name    string `json:"name"`
	Rows    int64  `json:"rows"`
	Parquet Object `json:"parquet"`
}

// Object is a blob: where to read or write it, and its key in the store.
type Object struct {
	URL string `json:"url"`
	Key string `json:"key"`
}

// Result is where attempt Attempt writes its result.
type Result struct {
	Attempt int    `json:"attempt"`
	URL     string `json:"url"`
	Key     string `json:"key"`
}

// Events of tt.evt.<model>.call.
const (
	EventQueued    = "queued"
	EventStarted   = "started"
	EventProgress  = "progress"
	EventDone      = "done"
	EventFailed    = "failed"
	EventCancelled = "cancelled"
)

// Event is the body of tt.evt.<model>.call. Queued carries the job (and
// the job's TT_CALL sequence); cancelled, who asked.
type Event struct {
	Event       string  `json:"event"`
	Model       string  `json:"model"`
	CallID      string  `json:"call_id"`
	Attempt     int     `json:"attempt,omitempty"`
	Worker      string  `json:"worker,omitempty"`
	Fraction    float64 `json:"fraction,omitempty"`
	Message     string  `json:"message,omitempty"`
	ContentType string  `json:"content_type,omitempty"`
	Rows        int64   `json:"rows,omitempty"`
	Bytes       int64   `json:"bytes,omitempty"`
	Error       *Error  `json:"error,omitempty"`
	Final       bool    `json:"final,omitempty"`
	// Queued only.
	Job      *Job   `json:"job,omitempty"`
	Route    string `json:"route,omitempty"`
	JobSeq   uint64 `json:"job_seq,omitempty"`
	Function string `json:"function,omitempty"`
	// Output is the table and mode the result is applied to, if any.
	Output *Output `json:"output,omitempty"`
	// Principal is who sent the call, on the dispatcher's failed event of
	// a call it refused (a queued one's job names it).
	Principal string `json:"principal,omitempty"`
}

// Error is a contract error in an event or a record.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ErrorOf is err as the contract reports it.
func ErrorOf(err error) *Error {
	code, msg := apierr.From(err)
	return &Error{Code: string(code), Message: msg}
}

// Output is a write-back's table and mode.
type Output struct {
	Table string `json:"table"`
	Mode  string `json:"mode"`
}

// States of a call's record.
const (
	StateQueued  = "queued"
	StateRunning = "running"
	StateDone    = "done"
	StateFailed  = "failed"
)

// Record is a call's record in tt_calls under <model>.<call id>.
type Record struct {
	CallID      string         `json:"call_id"`
	Model       string         `json:"model"`
	Function    string         `json:"function"`
	Principal   string         `json:"principal,omitempty"`
	Handler     string         `json:"handler,omitempty"`
	Route       string         `json:"route,omitempty"`
	Args        map[string]any `json:"args,omitempty"`
	State       string         `json:"state"`
	Worker      string         `json:"worker,omitempty"`
	Attempt     int            `json:"attempt,omitempty"`
	MaxAttempts int            `json:"max_attempts,omitempty"`
	Progress    *Progress      `json:"progress,omitempty"`
	Version     uint64         `json:"version,omitempty"`
	QueuedAt    string         `json:"queued_at,omitempty"`
	Deadline    string         `json:"deadline,omitempty"`
	UpdatedAt   string         `json:"updated_at,omitempty"`
	JobSeq      uint64         `json:"job_seq,omitempty"`
	// PageRows is the most rows a page of the result holds.
	PageRows  int         `json:"page_rows,omitempty"`
	Attempts  []Attempt   `json:"attempts,omitempty"`
	Result    *ResultInfo `json:"result,omitempty"`
	WriteBack *WriteBack  `json:"write_back,omitempty"`
	Error     *Error      `json:"error,omitempty"`
}

// Progress is what a running call's worker last reported.
type Progress struct {
	Fraction float64 `json:"fraction"`
	Message  string  `json:"message,omitempty"`
}

// Attempt is one attempt of a call.
type Attempt struct {
	Attempt   int    `json:"attempt"`
	Worker    string `json:"worker,omitempty"`
	StartedAt string `json:"started_at,omitempty"`
	EndedAt   string `json:"ended_at,omitempty"`
	Error     *Error `json:"error,omitempty"`
}

// ResultInfo describes a done call's result.
type ResultInfo struct {
	Pages       int    `json:"pages"`
	Rows        int64  `json:"rows"`
	ContentType string `json:"content_type"`
}

// WriteBack is the mutation that applies a result to its output table.
type WriteBack struct {
	RequestID string `json:"request_id"`
	Table     string `json:"table"`
	Mode      string `json:"mode"`
}

// Terminal says whether the record's call has ended.
func (r *Record) Terminal() bool { return r.State == StateDone || r.State == StateFailed }

// Heartbeat is a worker's entry in tt_compute under its id.
type Heartbeat struct {
	ID           string   `json:"id"`
	Capabilities []string `json:"capabilities"`
	Handlers     []string `json:"handlers"`
	Slots        int      `json:"slots"`
	Running      []string `json:"running"`
	Lang         string   `json:"lang,omitempty"`
	StartedAt    string   `json:"started_at,omitempty"`
}

// WriteBackID is the request id of a call's write-back: fn- and the call
// id when it fits the request-id rule, else fn- and 40 hex digits of the
// call id's SHA-256.
func WriteBackID(callID string) string {
	if len(callID) <= 61 {
		return "fn-" + callID
	}
	sum := sha256.Sum256([]byte(callID))
	return "fn-" + hex.EncodeToString(sum[:])[:40]
}

// Consumer is the durable consumer of TT_CALL that every worker of route
// shares.
func Consumer(route string) string { return "call-" + route }

// Backoff is how long a failed, non-final attempt waits before the job is
// delivered again: 2^(attempt-1) seconds, at most a minute.
func Backoff(attempt int) int64 {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 7 {
		return 60
	}
	return min(int64(1)<<(attempt-1), 60)
}
