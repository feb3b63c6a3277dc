// Package subject is the one place where teatree builds the names of the
// wire contract: subjects, streams, KV buckets and headers, and where the
// contract's id rules are checked. Nothing else in teatree formats a subject.
package subject

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultPrefix is the subject prefix when none is configured.
const DefaultPrefix = "tt"

// Mutation operations, the last token of tt.mut.<model>.<op>.
const (
	OpAppend = "append"
	OpUpsert = "upsert"
	OpSQL    = "sql"
	OpCall   = "call"
)

// Notification statuses (Tt-Status).
const (
	StatusApplied = "applied"
	StatusFailed  = "failed"
	StatusResult  = "result"
	// StatusProgress is a running compute call's progress; not terminal.
	StatusProgress = "progress"
)

// Event kinds, the last token of tt.evt.<model>.<kind>.
const (
	EventOutcomes = "outcomes"
	EventSnapshot = "snapshot"
	EventResult   = "result"
	// EventReject carries a request the dispatcher gave up placing; the
	// notifier commits its rejection in the catalog, then notifies.
	EventReject = "reject"
	// EventCall carries what happens to a compute call: queued by the
	// dispatcher; started, progress, done or failed by its worker;
	// cancelled by the gateway. It is the one public event subject.
	EventCall = "call"
)

// Header names of the contract.
const (
	HeaderMsgID       = "Nats-Msg-Id"
	HeaderTable       = "Tt-Table"
	HeaderKey         = "Tt-Key"
	HeaderContentType = "Content-Type"
	HeaderBodyRef     = "Tt-Body-Ref"
	HeaderNotifyURL   = "Tt-Notify-Url"
	HeaderTraceparent = "traceparent"
	HeaderSignature   = "Tt-Signature"
	HeaderModel       = "Tt-Model"
	HeaderRequestID   = "Tt-Request-Id"
	HeaderStatus      = "Tt-Status"
	HeaderSeq         = "Tt-Seq"
	HeaderPage        = "Tt-Page"
	HeaderPages       = "Tt-Pages"
	HeaderErrorCode   = "Tt-Error-Code"
	HeaderVersion     = "Tt-Version"
	HeaderResultID    = "Tt-Result-Id"
	HeaderRows        = "Tt-Rows"
	// HeaderWebhook "request" on a notification says that its request
	// asked for a webhook, which the notifier keeps to itself.
	HeaderWebhook = "Tt-Webhook"
	// HeaderPrincipal names who sent a request, on its terminal
	// notification; absent when the request named nobody.
	HeaderPrincipal = "Tt-Principal"
	// HeaderMode "replace" on an append deletes the table's rows first.
	HeaderMode = "Tt-Mode"
)

// WebhookRequest is the value of HeaderWebhook.
const WebhookRequest = "request"

// Content types a mutation body may have.
const (
	ContentArrow   = "application/vnd.apache.arrow.stream"
	ContentParquet = "application/vnd.apache.parquet"
	ContentCSV     = "text/csv"
	ContentNDJSON  = "application/x-ndjson"
	ContentJSON    = "application/json"
)

// Names builds every subject, stream and bucket name for one prefix.
// The zero value is not usable; call New.
type Names struct {
	prefix string
	upper  string
}

// New returns the names for prefix, which must be one subject token.
func New(prefix string) (Names, error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !isToken(prefix) || strings.ToLower(prefix) != prefix {
		return Names{}, fmt.Errorf("prefix %q: must be one lower-case subject token (letters, digits, _ and -)", prefix)
	}
	return Names{prefix: prefix, upper: strings.ToUpper(strings.ReplaceAll(prefix, "-", "_"))}, nil
}

// Default returns the names for the default prefix "tt".
func Default() Names {
	n, _ := New(DefaultPrefix)
	return n
}

// Prefix returns the subject prefix.
func (n Names) Prefix() string { return n.prefix }

// Stream names.
func (n Names) MutStream() string  { return n.upper + "_MUT" }
func (n Names) CallStream() string { return n.upper + "_CALL" }
func (n Names) EvtStream() string  { return n.upper + "_EVT" }
func (n Names) NtfStream() string  { return n.upper + "_NTF" }
func (n Names) DeadStream() string { return n.upper + "_DEAD" }

// KV bucket names.
func (n Names) ModelsBucket() string     { return n.prefix + "_models" }
func (n Names) OwnersBucket() string     { return n.prefix + "_owners" }
func (n Names) WorkersBucket() string    { return n.prefix + "_workers" }
func (n Names) ResultsBucket() string    { return n.prefix + "_results" }
func (n Names) DeliveriesBucket() string { return n.prefix + "_deliveries" }
func (n Names) PinsBucket() string       { return n.prefix + "_pins" }
func (n Names) LeadersBucket() string    { return n.prefix + "_leaders" }
func (n Names) FunctionsBucket() string  { return n.prefix + "_functions" }
func (n Names) CallsBucket() string      { return n.prefix + "_calls" }
func (n Names) ComputeBucket() string    { return n.prefix + "_compute" }

// Mut is tt.mut.<model>.<op>.
func (n Names) Mut(model, op string) string { return n.prefix + ".mut." + model + "." + op }

// MutBy is tt.mut.<model>.<op>.<principal>: a mutation that names who sent
// it; Mut when principal is empty.
func (n Names) MutBy(model, op, principal string) string {
	return by(n.Mut(model, op), principal)
}

// MutModel is tt.mut.<model>.>: every mutation of one model.
func (n Names) MutModel(model string) string { return n.prefix + ".mut." + model + ".>" }

// MutAll is tt.mut.>.
func (n Names) MutAll() string { return n.prefix + ".mut.>" }

// Mutation is a parsed mutation subject.
type Mutation struct {
	Model, Op string
	// Principal is the optional last token: who sent the mutation.
	Principal string
}

// ParseMut splits tt.mut.<model>.<op>[.<principal>]. The model and op are
// returned as they are, unchecked; ok is false when the subject does not
// have that shape or its principal token is not a principal's name, and
// then the principal is empty: a bad token names nobody.
func (n Names) ParseMut(subj string) (m Mutation, ok bool) {
	rest, found := strings.CutPrefix(subj, n.prefix+".mut.")
	if !found {
		return m, false
	}
	m.Model, rest, found = strings.Cut(rest, ".")
	var named bool
	m.Op, m.Principal, named = strings.Cut(rest, ".")
	if !validBy(m.Principal, named) {
		m.Principal = ""
		return m, false
	}
	return m, found && m.Model != "" && m.Op != ""
}

// by appends the principal token to subj, if there is one.
func by(subj, principal string) string {
	if principal == "" {
		return subj
	}
	return subj + "." + principal
}

// validBy says whether a subject's optional principal token is one;
// named says whether the subject has the token at all.
func validBy(principal string, named bool) bool {
	return !named || ValidatePrincipal(principal) == nil
}

// Capabilities of the contract's own executors.
const CapabilityDuckDB = "duckdb"

// CallCapability is tt.call.<capability>.>: every job of one capability.
func (n Names) CallCapability(capability string) string {
	return n.prefix + ".call." + capability + ".>"
}

// ParseCall returns the model of a tt.call.<capability>.<model> subject.
func (n Names) ParseCall(subj, capability string) (string, bool) {
	model, ok := strings.CutPrefix(subj, n.prefix+".call."+capability+".")
	return model, ok && model != "" && !strings.Contains(model, ".")
}

// CallBy is tt.call.fn.<model>.<principal>: a compute call that names who
// sent it; tt.call.fn.<model> when principal is empty.
func (n Names) CallBy(model, principal string) string {
	return by(n.Call(CallIntake, model), principal)
}

// ParseCallBy splits tt.call.fn.<model>[.<principal>] as ParseMut splits
// a mutation subject.
func (n Names) ParseCallBy(subj string) (model, principal string, ok bool) {
	rest, found := strings.CutPrefix(subj, n.prefix+".call."+CallIntake+".")
	if !found {
		return "", "", false
	}
	model, principal, named := strings.Cut(rest, ".")
	if !validBy(principal, named) {
		return model, "", false
	}
	return model, principal, model != ""
}

// CallIntakeAll is tt.call.fn.>: the filter of the dispatcher's intake.
func (n Names) CallIntakeAll() string { return n.prefix + ".call." + CallIntake + ".>" }

// CallIntake is the route of compute calls before the dispatcher has
// checked them and picked a worker's route: tt.call.fn.<model>.
const CallIntake = "fn"

// Call is tt.call.<route>.<model>: a job for the workers of one route (a
// capability, fn, or <handler>@<capabilities>).
func (n Names) Call(route, model string) string { return n.prefix + ".call." + route + "." + model }

// CallRoute is tt.call.<route>.*: every job of one route, the filter of
// its durable consumer.
func (n Names) CallRoute(route string) string { return n.prefix + ".call." + route + ".*" }

// WorkCancel is tt.work.cancel.<model>.<call id>: the worker running the
// call stops it.
func (n Names) WorkCancel(model, callID string) string {
	return n.prefix + ".work.cancel." + model + "." + callID
}

// CallAll is tt.call.>.
func (n Names) CallAll() string { return n.prefix + ".call.>" }

// Evt is tt.evt.<model>.<kind>.
func (n Names) Evt(model, kind string) string { return n.prefix + ".evt." + model + "." + kind }

// EvtAll is tt.evt.>.
func (n Names) EvtAll() string { return n.prefix + ".evt.>" }

// NtfRequest is tt.ntf.<model>.req.<request id>.
func (n Names) NtfRequest(model, requestID string) string {
	return n.prefix + ".ntf." + model + ".req." + requestID
}

// NtfSnapshot is tt.ntf.<model>.snap.<version>.
func (n Names) NtfSnapshot(model string, version uint64) string {
	return n.prefix + ".ntf." + model + ".snap." + strconv.FormatUint(version, 10)
}

// NtfModel is tt.ntf.<model>.>: every notification of one model.
func (n Names) NtfModel(model string) string { return n.prefix + ".ntf." + model + ".>" }

// NtfAll is tt.ntf.>.
func (n Names) NtfAll() string { return n.prefix + ".ntf.>" }

// Dead is tt.dead.<model>: events of the model the notifier gave up on.
func (n Names) Dead(model string) string { return n.prefix + ".dead." + model }

// DeadAll is tt.dead.>.
func (n Names) DeadAll() string { return n.prefix + ".dead.>" }

// Query is tt.query.<model>.
func (n Names) Query(model string) string { return n.prefix + ".query." + model }

// QueryAll is tt.query.*: every model's queries.
func (n Names) QueryAll() string { return n.prefix + ".query.*" }

// ParseQuery returns the model of a query subject.
func (n Names) ParseQuery(subj string) (string, bool) {
	model, ok := strings.CutPrefix(subj, n.prefix+".query.")
	return model, ok && model != "" && !strings.Contains(model, ".")
}

// Result is tt.result.<result id>.<page>.
func (n Names) Result(resultID string, page int) string {
	return n.prefix + ".result." + resultID + "." + strconv.Itoa(page)
}

// ResultAll is tt.result.*.*: every page of every stored result.
func (n Names) ResultAll() string { return n.prefix + ".result.*.*" }

// ParseResult splits a result subject into result id and page.
func (n Names) ParseResult(subj string) (id string, page int, ok bool) {
	rest, found := strings.CutPrefix(subj, n.prefix+".result.")
	if !found {
		return "", 0, false
	}
	id, p, found := strings.Cut(rest, ".")
	page, err := strconv.Atoi(p)
	return id, page, found && err == nil && page >= 1 && id != ""
}

// SnapshotNow is tt.ctl.<model>.snapshot, internal: a reader that needs a
// newer version asks the model's db-manager to publish one now.
func (n Names) SnapshotNow(model string) string { return n.prefix + ".ctl." + model + ".snapshot" }

// NodeEvict is tt.ctl.node.<node>.evict, internal: a dispatcher that finds
// no free slot asks a node to close its least recently used settled model.
// The reply names the model closed, empty when none could be.
func (n Names) NodeEvict(node string) string { return n.prefix + ".ctl.node." + node + ".evict" }

// NodeRelease is tt.ctl.node.<node>.release, internal: a dispatcher moving
// a model asks its node to stop it and give its lease up; the body is the
// model id. The reply is empty once the lease is released, else an error
// message.
func (n Names) NodeRelease(node string) string { return n.prefix + ".ctl.node." + node + ".release" }

// DispatchMove is tt.ctl.dispatch.move, internal: the gateway asks the
// dispatchers (one answers, in queue group DispatchQueue) to move a model
// to a node.
func (n Names) DispatchMove() string { return n.prefix + ".ctl.dispatch.move" }

// DispatchQueue is the queue group dispatchers answer DispatchMove in.
const DispatchQueue = "dispatcher"

// The Nats-Msg-Id of every derived message is a pure function of what it
// describes, so that a retry after a crash is dropped by JetStream's
// duplicate window instead of being published twice.

// The parts of a message id are joined with ".", which neither a model id
// nor a request id may contain, so that two ids never collide.

// OutcomesMsgID names the outcomes event of a batch ending at lastSeq,
// applied by the writer of epoch. The epoch is part of it: a new holder
// applies the same requests again, and its event must not be dropped as a
// duplicate of the old holder's, which the notifier no longer trusts.
func OutcomesMsgID(model string, lastSeq, epoch uint64) string {
	return "out." + model + "." + strconv.FormatUint(lastSeq, 10) + "." + strconv.FormatUint(epoch, 10)
}

// RejectMsgID names the outcome of a request the dispatcher ends itself,
// under epoch (0 for a rejection no lease is needed for). The epoch is
// part of it for the reason OutcomesMsgID gives: a rejection tried again
// runs under a new epoch.
func RejectMsgID(model string, seq, epoch uint64) string {
	return "rej." + model + "." + strconv.FormatUint(seq, 10) + "." + strconv.FormatUint(epoch, 10)
}

// RequestNtfMsgID names a request's notification page.
func RequestNtfMsgID(model, requestID string, page int) string {
	return "req." + model + "." + requestID + "." + strconv.Itoa(page)
}

// ResultMsgID names the outcome event of a durable query job.
func ResultMsgID(model, requestID string) string { return "res." + model + "." + requestID }

// SnapshotMsgID names a version's event and notification.
func SnapshotMsgID(model string, version uint64) string {
	return "snap." + model + "." + strconv.FormatUint(version, 10)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
