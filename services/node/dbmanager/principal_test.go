package dbmanager_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/apierr"
	"github.com/teatree-dev/teatree/pkg/subject"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// TestPrincipalInOutcomes: a mutation whose subject names its principal,
// tt.mut.<model>.<op>.<principal>, is applied as any other; its outcome
// names the principal, and so does its row of _tt_requests, the audit
// trail every version carries. A principal token that is no principal's
// name fails the request and changes nothing.
func TestPrincipalInOutcomes(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	l := h.createModel(t, &teatreev1.ModelSpec{Id: "m"})
	outcomes := h.watchOutcomes(t, "m")
	create := sqlMutation("create", `{"sql":"create table t (x int)"}`)
	create.subject = h.names.MutBy("m", subject.OpSQL, "ops")
	h.publish(t, "m", create)
	rows := csvRows("t", "rows", "x\n1\n")
	rows.subject = h.names.MutBy("m", subject.OpAppend, "sales-app")
	h.publish(t, "m", rows)
	h.publish(t, "m", csvRows("t", "anonymous", "x\n2\n"))
	bad := csvRows("t", "bad", "x\n3\n")
	bad.subject = h.names.Mut("m", subject.OpAppend) + ".not@a-name"
	h.publish(t, "m", bad)
	dir := t.TempDir()
	run := h.start(t, l, dir)

	got := outcomes.await(t, "create", "rows", "anonymous", "bad")
	requireApplied(t, got["create"], 0)
	requireApplied(t, got["rows"], 1)
	requireApplied(t, got["anonymous"], 1)
	requireFailed(t, got["bad"], string(apierr.InvalidArgument))
	require.Contains(t, got["bad"].GetError().GetMessage(), "[.<principal>]", "the error says what the subject should be")
	require.Equal(t, "ops", got["create"].GetPrincipal())
	require.Equal(t, "sales-app", got["rows"].GetPrincipal())
	require.Empty(t, got["anonymous"].GetPrincipal())

	run.stop(t)
	db := openCopy(t, localFile(dir))
	require.Equal(t, []string{"create|ops", "rows|sales-app", "anonymous|", "bad|"},
		queryStrings(t, db, "SELECT request_id, coalesce(principal, '') FROM _tt_requests ORDER BY seq"))
	require.Equal(t, []string{"1", "2"}, queryStrings(t, db, "SELECT x FROM t ORDER BY x"), "the bad request changed nothing")
}
