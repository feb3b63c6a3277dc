package auth

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var hashA = HashToken("a")

func TestParseYAMLAndJSONAlike(t *testing.T) {
	t.Parallel()
	yamlDoc := `
principals:
  - name: analyst
    tokens: ["` + hashA + `", {hash: "` + HashToken("b") + `", expires: "2030-01-01T00:00:00Z"}]
    allow:
      - {models: ["sales*"], roles: [read]}
      - {models: ["*"], roles: [work], capabilities: [go]}
    limits: {queries: 2, mutations_per_second: 1.5}
`
	jsonDoc := `{"principals":[{"name":"analyst",
  "tokens":["` + hashA + `",{"hash":"` + HashToken("b") + `","expires":"2030-01-01T00:00:00Z"}],
  "allow":[{"models":["sales*"],"roles":["read"]},{"models":["*"],"roles":["work"],"capabilities":["go"]}],
  "limits":{"queries":2,"mutations_per_second":1.5}}]}`
	for name, doc := range map[string]string{"yaml": yamlDoc, "json": jsonDoc} {
		p, err := Parse([]byte(doc))
		require.NoError(t, err, name)
		require.Len(t, p.Principals, 1, name)
		pr := p.Principals[0]
		require.Equal(t, Limits{Queries: 2, MutationsPerSecond: 1.5}, pr.Limits, name)
		require.Equal(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), pr.Tokens[1].Expires.UTC(), name)
		require.True(t, pr.Can(Read, "sales_eu"), name)
		require.False(t, pr.Can(Read, "hr"), name)
	}
}

func TestParseRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", `principals: [{name: a, allow: [], role: admin}]`, `unknown field "role"`},
		{"bad glob", `principals: [{name: a, allow: [{models: ["sales[0-9]"], roles: [read]}]}]`, "is not a glob of model ids"},
		{"empty models", `principals: [{name: a, allow: [{models: [], roles: [read]}]}]`, "models is empty"},
		{"bad role", `principals: [{name: a, allow: [{models: ["*"], roles: [boss]}]}]`, `"boss" is not admin, write, read or work`},
		{"work without capabilities", `principals: [{name: a, allow: [{models: ["*"], roles: [work]}]}]`, "a work grant needs capabilities"},
		{"work on some models", `principals: [{name: a, allow: [{models: ["sales"], roles: [work], capabilities: [go]}]}]`, `a work grant takes models: ["*"]`},
		{"capabilities without work", `principals: [{name: a, allow: [{models: ["*"], roles: [read], capabilities: [go]}]}]`, "capabilities belong to a work grant only"},
		{"duplicate token", `principals: [{name: a, tokens: ["` + hashA + `"], allow: []}, {name: b, tokens: ["` + hashA + `"], allow: []}]`, "is also a token of a"},
		{"bad token", `principals: [{name: a, tokens: ["sha256:12"], allow: []}]`, "64 hex digits"},
		{"bad name", `principals: [{name: "a.b", allow: []}]`, "must be 1 to 64 letters"},
		{"name twice", `principals: [{name: a, allow: []}, {name: a, allow: []}]`, "principal a is named twice"},
		{"negative limit", `principals: [{name: a, allow: [], limits: {queries: -1}}]`, "limits must not be negative"},
		{"nats without hash", `principals: [{name: a, nats: {user: a}, allow: []}]`, "needs a user and a password_hash"},
		{"not a document", `principals: [`, "parse"},
	} {
		_, err := Parse([]byte(tc.doc))
		require.ErrorContains(t, err, tc.want, tc.name)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(`
principals:
  - name: a
    tokens: ["` + hashA + `", {hash: "` + HashToken("soon") + `", expires: "2030-01-01T00:00:00Z"}]
    allow: []
`))
	require.NoError(t, err)
	before := time.Date(2029, 12, 31, 0, 0, 0, 0, time.UTC)
	after := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

	pr, err := p.Authenticate("a", after)
	require.NoError(t, err)
	require.Equal(t, "a", pr.Name)
	pr, err = p.Authenticate("soon", before)
	require.NoError(t, err)
	require.Equal(t, "a", pr.Name)
	_, err = p.Authenticate("soon", after)
	require.ErrorIs(t, err, ErrExpired)
	_, err = p.Authenticate("wrong", before)
	require.ErrorIs(t, err, ErrUnauthenticated)
}

func TestNewTokenAuthenticates(t *testing.T) {
	t.Parallel()
	tok, hash, err := NewToken()
	require.NoError(t, err)
	require.Regexp(t, `^tt_`, tok)
	p, err := Parse([]byte(`principals: [{name: a, tokens: ["` + hash + `"], allow: []}]`))
	require.NoError(t, err)
	pr, err := p.Authenticate(tok, time.Now())
	require.NoError(t, err)
	require.Equal(t, "a", pr.Name)
}

func TestCanAndCanServe(t *testing.T) {
	t.Parallel()
	p, err := Parse([]byte(`
principals:
  - name: a
    allow:
      - {models: ["sales*", "hr"], roles: [read, write]}
      - {models: ["*"], roles: [work], capabilities: ["*"]}
  - name: b
    allow:
      - {models: ["s?les"], roles: [admin]}
  - name: c
    allow:
      - {models: ["*"], roles: [work], capabilities: [go]}
`))
	require.NoError(t, err)
	a, b, c := p.Principals[0], p.Principals[1], p.Principals[2]

	require.True(t, a.Can(Read, "sales"))
	require.True(t, a.Can(Write, "sales_eu"))
	require.True(t, a.Can(Read, "hr"))
	require.False(t, a.Can(Read, "hr2"))
	require.False(t, a.Can(Admin, "sales"), "roles do not include each other")
	require.True(t, a.CanAnywhere(Work))
	require.False(t, a.CanAnywhere(Admin))

	require.True(t, b.Can(Admin, "sales"))
	require.True(t, b.Can(Admin, "soles"))
	require.False(t, b.Can(Admin, "saless"))
	require.False(t, b.Can(Read, "sales"))

	require.True(t, a.CanServe([]string{"python"}), `"*" covers any capability`)
	require.False(t, b.CanServe([]string{"go"}))
	require.True(t, c.CanServe([]string{"go"}))
	require.False(t, c.CanServe([]string{"go", "gpu"}), "a job needs every one of its capabilities")
}
