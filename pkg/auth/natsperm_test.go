package auth_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/subject"
)

// principal parses a policy of one principal with the grants given as
// YAML flow mappings.
func principal(t *testing.T, grants ...string) *auth.Principal {
	t.Helper()
	doc := "principals:\n- name: p\n  allow:\n"
	for _, g := range grants {
		doc += "  - " + g + "\n"
	}
	p, err := auth.Parse([]byte(doc))
	require.NoError(t, err)
	return p.Principals[0]
}

var catalog = auth.Catalog{
	Models: []string{"hr", "sales", "sales2"},
	Routes: []string{"describe@go", "describe@go+gpu", "render@gpu"},
}

func TestReaderPermissions(t *testing.T) {
	got := principal(t, `{models: [sales], roles: [read]}`).NATSPermissions(subject.Default(), catalog)
	require.Equal(t, auth.Permissions{
		Publish: []string{
			"$JS.ACK.TT_NTF.>",
			"$JS.API.CONSUMER.CREATE.TT_NTF.*.tt.ntf.sales.>",
			"$JS.API.CONSUMER.DELETE.TT_NTF.*",
			"$JS.API.CONSUMER.INFO.TT_NTF.*",
			"$JS.API.CONSUMER.MSG.NEXT.TT_NTF.*",
			"$JS.API.INFO",
			"$JS.API.STREAM.INFO.TT_NTF",
			"$JS.FC.TT_NTF.>",
			"tt.call.duckdb.sales",
			"tt.query.sales",
			"tt.result.*.*",
		},
		Subscribe: []string{"_INBOX_p.>", "tt.ntf.sales.>"},
	}, got)
}

func TestWriterPermissions(t *testing.T) {
	got := principal(t, `{models: [sales], roles: [write]}`).NATSPermissions(subject.Default(), catalog)
	require.Equal(t, auth.Permissions{
		// A writer without read sends, and hears nothing but its replies.
		Publish:   []string{"$JS.API.INFO", "tt.call.fn.sales.p", "tt.mut.sales.*.p"},
		Subscribe: []string{"_INBOX_p.>"},
	}, got)
}

func TestGlobsExpandOverTheCatalog(t *testing.T) {
	n := subject.Default()
	got := principal(t, `{models: ["sales*"], roles: [write]}`).NATSPermissions(n, catalog)
	require.ElementsMatch(t, []string{"$JS.API.INFO", "tt.call.fn.sales.p", "tt.mut.sales.*.p", "tt.call.fn.sales2.p", "tt.mut.sales2.*.p"}, got.Publish)

	// A glob that matches no model yet gives nothing; an exact name
	// holds before its model exists.
	got = principal(t, `{models: ["new*", "later"], roles: [write]}`).NATSPermissions(n, catalog)
	require.ElementsMatch(t, []string{"$JS.API.INFO", "tt.call.fn.later.p", "tt.mut.later.*.p"}, got.Publish)

	// "*" is every model, those created later too, without the catalog.
	got = principal(t, `{models: ["*"], roles: [read, write]}`).NATSPermissions(n, auth.Catalog{})
	require.Contains(t, got.Publish, "tt.mut.*.*.p")
	require.Contains(t, got.Publish, "tt.query.*")
	require.Contains(t, got.Subscribe, "tt.ntf.*.>")
}

func TestWorkerPermissions(t *testing.T) {
	n := subject.Default()
	consumer := func(route string) []string {
		return []string{
			"$JS.API.CONSUMER.CREATE.TT_CALL.call-" + route + ".tt.call." + route + ".*",
			"$JS.API.CONSUMER.INFO.TT_CALL.call-" + route,
			"$JS.API.CONSUMER.MSG.NEXT.TT_CALL.call-" + route,
			"$JS.ACK.TT_CALL.call-" + route + ".>",
		}
	}
	common := []string{"$JS.API.INFO", "$JS.API.STREAM.INFO.KV_tt_compute", "$JS.API.STREAM.INFO.TT_CALL", "$KV.tt_compute.>", "tt.evt.*.call"}

	// A worker of "go" serves the routes needing go alone.
	got := principal(t, `{models: ["*"], roles: [work], capabilities: [go]}`).NATSPermissions(n, catalog)
	require.ElementsMatch(t, append(common, consumer("describe@go")...), got.Publish)
	require.Equal(t, []string{"_INBOX_p.>", "tt.work.cancel.*.*"}, got.Subscribe)

	got = principal(t, `{models: ["*"], roles: [work], capabilities: [go, gpu]}`).NATSPermissions(n, catalog)
	want := append(append(append([]string{}, common...), consumer("describe@go")...), consumer("describe@go+gpu")...)
	require.ElementsMatch(t, append(want, consumer("render@gpu")...), got.Publish)

	// "*" serves every route, those registered later too.
	got = principal(t, `{models: ["*"], roles: [work], capabilities: ["*"]}`).NATSPermissions(n, auth.Catalog{})
	require.ElementsMatch(t, append(common,
		"$JS.API.CONSUMER.CREATE.TT_CALL.*.tt.call.*.*",
		"$JS.API.CONSUMER.INFO.TT_CALL.*",
		"$JS.API.CONSUMER.MSG.NEXT.TT_CALL.*",
		"$JS.ACK.TT_CALL.*.>",
	), got.Publish)

	// A worker of capabilities no route needs may do nothing of jobs.
	got = principal(t, `{models: ["*"], roles: [work], capabilities: [tpu]}`).NATSPermissions(n, catalog)
	require.Equal(t, auth.Permissions{Publish: []string{"$JS.API.INFO"}, Subscribe: []string{"_INBOX_p.>"}}, got)
}

func TestInboxPrefix(t *testing.T) {
	require.Equal(t, "_INBOX_reader", auth.InboxPrefix("reader"))
}
