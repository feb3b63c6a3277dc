package subject_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/subject"
)

func TestNewRejectsBadPrefixes(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"TT", "Tt", "a.b", "tt.", ".tt", "a*", ">", "a b", "a/b", "a:b", "tt\n"} {
		_, err := subject.New(p)
		require.Error(t, err, "prefix %q", p)
	}
}

func TestNewBuildsNamesFromThePrefix(t *testing.T) {
	t.Parallel()
	n, err := subject.New("")
	require.NoError(t, err)
	require.Equal(t, subject.Default(), n)
	require.Equal(t, "tt", n.Prefix())
	require.Equal(t, "TT_MUT", n.MutStream())
	require.Equal(t, "tt_owners", n.OwnersBucket())
	require.Equal(t, "tt_leaders", n.LeadersBucket())
	require.Equal(t, "tt.mut.sales.append", n.Mut("sales", subject.OpAppend))
	require.Equal(t, "tt.ntf.sales.req.r1", n.NtfRequest("sales", "r1"))
	require.Equal(t, "tt.ntf.sales.snap.7", n.NtfSnapshot("sales", 7))

	n, err = subject.New("my-app")
	require.NoError(t, err)
	require.Equal(t, "my-app", n.Prefix())
	require.Equal(t, "MY_APP_MUT", n.MutStream())
	require.Equal(t, "MY_APP_NTF", n.NtfStream())
	require.Equal(t, "my-app_models", n.ModelsBucket())
	require.Equal(t, "my-app.mut.>", n.MutAll())
	require.Equal(t, "my-app.evt.m.outcomes", n.Evt("m", subject.EventOutcomes))
}

func TestParseMut(t *testing.T) {
	t.Parallel()
	tt := subject.Default()
	app, err := subject.New("app")
	require.NoError(t, err)
	cases := []struct {
		names                subject.Names
		subj                 string
		model, op, principal string
		ok                   bool
	}{
		{tt, "tt.mut.sales.append", "sales", "append", "", true},
		{tt, "tt.mut.Bad_Model.sql", "Bad_Model", "sql", "", true}, // tokens come back unchecked
		{tt, "tt.mut.sales.nope", "sales", "nope", "", true},
		{app, "app.mut.m.sql", "m", "sql", "", true},
		{tt, "tt.mut.sales.append.sales-app", "sales", "append", "sales-app", true},
		{tt, "tt.mut.sales.sql.Ops_2", "sales", "sql", "Ops_2", true},
		{tt, "tt.mut.sales", "", "", "", false},
		{tt, "tt.mut.sales.", "", "", "", false},
		{tt, "tt.mut..append", "", "", "", false},
		{tt, "tt.mut.sales.append.", "", "", "", false},
		{tt, "tt.mut.sales.append.a.b", "", "", "", false},
		{tt, "tt.mut.sales.append." + strings.Repeat("p", 65), "", "", "", false},
		{tt, "tt.evt.sales.outcomes", "", "", "", false},
		{tt, "ttx.mut.sales.append", "", "", "", false},
		{tt, "tt.mut", "", "", "", false},
		{app, "tt.mut.sales.append", "", "", "", false},
	}
	for _, c := range cases {
		m, ok := c.names.ParseMut(c.subj)
		require.Equal(t, c.ok, ok, "%s", c.subj)
		if c.ok {
			require.Equal(t, subject.Mutation{Model: c.model, Op: c.op, Principal: c.principal}, m, "%s", c.subj)
			require.Equal(t, c.subj, c.names.MutBy(m.Model, m.Op, m.Principal), "MutBy builds what ParseMut splits")
		}
	}
}

func TestParseCallBy(t *testing.T) {
	t.Parallel()
	n := subject.Default()
	for subj, want := range map[string][2]string{
		"tt.call.fn.sales":           {"sales", ""},
		"tt.call.fn.sales.sales-app": {"sales", "sales-app"},
	} {
		model, principal, ok := n.ParseCallBy(subj)
		require.True(t, ok, subj)
		require.Equal(t, want, [2]string{model, principal}, subj)
		require.Equal(t, subj, n.CallBy(model, principal))
	}
	for _, subj := range []string{"tt.call.fn.", "tt.call.fn.sales.", "tt.call.fn.sales.a.b", "tt.call.gpu.sales", "tt.call.fn"} {
		_, _, ok := n.ParseCallBy(subj)
		require.False(t, ok, subj)
	}
	require.Equal(t, "tt.call.fn.>", n.CallIntakeAll())
}

// TestMsgIDsDoNotCollide: ids may contain "-", so the parts of a message
// id must be joined by something they cannot contain.
func TestMsgIDsDoNotCollide(t *testing.T) {
	t.Parallel()
	require.NotEqual(t, subject.RequestNtfMsgID("a", "b-c", 1), subject.RequestNtfMsgID("a-b", "c", 1))
	require.NotEqual(t, subject.ResultMsgID("a", "b-c"), subject.ResultMsgID("a-b", "c"))
	require.NotEqual(t, subject.OutcomesMsgID("a", 1, 0), subject.RejectMsgID("a", 1, 0))
	require.NotEqual(t, subject.OutcomesMsgID("a", 1, 1), subject.OutcomesMsgID("a", 1, 2), "a new holder's outcomes are not duplicates of the old one's")
}
