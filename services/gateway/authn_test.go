package gateway

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/teatree-dev/teatree/pkg/auth"
	"github.com/teatree-dev/teatree/pkg/wire"
	teatreev1 "github.com/teatree-dev/teatree/proto/teatree/v1"
)

// tokenLine is a policy's tokens line for the bearer token tok.
func tokenLine(tok string) string { return `tokens: ["` + auth.HashToken(tok) + `"]` }

// rootPolicy is a principal root that may do anything, with token "root".
var rootPolicy = `
  - name: root
    ` + tokenLine("root") + `
    allow: [{models: ["*"], roles: [admin, write, read, work], capabilities: ["*"]}]
`

// startSecured starts a gateway under the policy principals (YAML list
// items after "principals:"), written to a file that the test may
// rewrite and reload through the returned holder.
func startSecured(t *testing.T, principals string) (*testEnv, *auth.Holder, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "policy.yaml")
	writePolicy(t, file, principals)
	h, err := auth.NewHolder(file)
	require.NoError(t, err)
	env := start(t, func(c *Config, _ *Deps) { c.Auth = h })
	return env, h, file
}

func writePolicy(t *testing.T, file, principals string) {
	t.Helper()
	require.NoError(t, os.WriteFile(file, []byte("principals:"+principals), 0o600))
}

// as sends a request with bearer token tok.
func (e *testEnv) as(t *testing.T, tok, method, path string, body []byte) response {
	t.Helper()
	return e.send(t, method, path, body, "Authorization", "Bearer "+tok, "Content-Type", "application/json")
}

// requireUnauthenticated asserts a 401 whose message contains want.
func requireUnauthenticated(t *testing.T, r response, want string) {
	t.Helper()
	requireError(t, r, http.StatusUnauthorized, "unauthenticated")
	require.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
	require.Contains(t, string(r.body), want)
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	env, h, file := startSecured(t, rootPolicy+`
  - name: old
    tokens: [{hash: "`+auth.HashToken("old")+`", expires: "2001-01-01T00:00:00Z"}]
    allow: [{models: ["*"], roles: [read]}]
  - name: gone
    `+tokenLine("gone")+`
    allow: [{models: ["*"], roles: [read]}]
`)
	r := env.send(t, http.MethodGet, "/healthz", nil)
	require.Equal(t, http.StatusOK, r.status, "health needs no token")

	requireUnauthenticated(t, env.send(t, http.MethodGet, "/v1/models", nil), "Authorization: Bearer")
	requireUnauthenticated(t, env.send(t, http.MethodGet, "/v1/models", nil, "Authorization", "Basic cm9vdDpyb290"), "Bearer <token>")
	requireUnauthenticated(t, env.as(t, "wrong", http.MethodGet, "/v1/models", nil), "not known")
	requireUnauthenticated(t, env.as(t, "old", http.MethodGet, "/v1/models", nil), "expired")

	require.Equal(t, http.StatusOK, env.as(t, "gone", http.MethodGet, "/v1/models", nil).status)
	writePolicy(t, file, rootPolicy)
	require.NoError(t, h.Reload())
	requireUnauthenticated(t, env.as(t, "gone", http.MethodGet, "/v1/models", nil), "revoked")
	require.Equal(t, http.StatusOK, env.as(t, "root", http.MethodGet, "/v1/models", nil).status)
}

func TestListModelsShowsWhatTheCallerMayRead(t *testing.T) {
	t.Parallel()
	env, _, _ := startSecured(t, rootPolicy+`
  - name: analyst
    `+tokenLine("analyst")+`
    allow: [{models: ["sales*"], roles: [read]}, {models: ["hr"], roles: [write]}]
`)
	for _, id := range []string{"hr", "sales", "sales_eu"} {
		r := env.as(t, "root", http.MethodPost, "/v1/models", []byte(`{"id":"`+id+`","webhook_url":"https://hooks.example/`+id+`"}`))
		require.Equal(t, http.StatusCreated, r.status, "body %s", r.body)
	}
	ids := func(tok string) []string {
		r := env.as(t, tok, http.MethodGet, "/v1/models", nil)
		require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
		var list teatreev1.ModelList
		require.NoError(t, wire.Unmarshal(r.body, &list))
		var out []string
		for _, m := range list.GetModels() {
			out = append(out, m.GetSpec().GetId())
			if tok != "root" {
				require.Empty(t, m.GetSpec().GetWebhookUrl(), "a reader sees no webhook")
			}
		}
		return out
	}
	require.Equal(t, []string{"hr", "sales", "sales_eu"}, ids("root"))
	require.Equal(t, []string{"sales", "sales_eu"}, ids("analyst"))

	webhook := func(tok string) string {
		r := env.as(t, tok, http.MethodGet, "/v1/models/sales", nil)
		require.Equal(t, http.StatusOK, r.status, "body %s", r.body)
		var info teatreev1.ModelInfo
		require.NoError(t, wire.Unmarshal(r.body, &info))
		return info.GetSpec().GetWebhookUrl()
	}
	require.Equal(t, "https://hooks.example/sales", webhook("root"))
	require.Empty(t, webhook("analyst"))
	require.NotContains(t, string(env.as(t, "analyst", http.MethodGet, "/v1/models/sales", nil).body), "hooks.example")
}

// statusAs sends a request as tok and returns its status and body; an
// event stream counts once its headers are in.
func (e *testEnv) statusAs(t *testing.T, tok, method, path, body string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, e.url+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return resp.StatusCode, ""
	}
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}
