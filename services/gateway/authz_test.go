package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPermissionMatrix runs every action as a principal of each role on
// the models "sales*" only, on its own model (sales) and on another (hr).
// A refused action answers 403 naming principal, role and model; an
// allowed one reaches its handler, whatever that then answers (no node or
// executor runs here).
func TestPermissionMatrix(t *testing.T) {
	t.Parallel()
	var policy strings.Builder
	policy.WriteString(rootPolicy)
	roles := []string{"admin", "write", "read", "work"}
	for _, role := range roles {
		// A work grant covers every model (pkg/auth); it gives nothing on
		// a model over HTTP.
		grant := `{models: ["sales*"], roles: [` + role + `]}`
		if role == "work" {
			grant = `{models: ["*"], roles: [work], capabilities: ["*"]}`
		}
		policy.WriteString(`
  - name: ` + role + `r
    ` + tokenLine(role) + `
    allow: [` + grant + "]\n")
	}
	env, _, _ := startSecured(t, policy.String())
	for _, id := range []string{"sales", "hr", "sales_gone", "hr_gone"} {
		r := env.as(t, "root", http.MethodPost, "/v1/models", []byte(`{"id":"`+id+`"}`))
		require.Equal(t, http.StatusCreated, r.status, "body %s", r.body)
	}

	actions := []struct {
		name, method, path, body string
		// needs is the role the action needs; "" for any principal.
		needs string
		// onModel: the action is about {m}; else it is the same on both.
		onModel bool
	}{
		{"create", "POST", "/v1/models", `{"id":"{m}_new"}`, "admin", true},
		{"delete", "DELETE", "/v1/models/{m}_gone", "", "admin", true},
		{"move", "POST", "/v1/models/{m}/move", `{}`, "admin", true},
		{"append", "POST", "/v1/models/{m}/tables/t/rows", `[{"a":1}]`, "write", true},
		{"sql", "POST", "/v1/models/{m}/sql", `{"sql":"create table x(a int)"}`, "write", true},
		{"call", "POST", "/v1/models/{m}/calls/f", `{}`, "write", true},
		{"cancel call", "DELETE", "/v1/models/{m}/calls/c1", "", "write", true},
		{"get call", "GET", "/v1/models/{m}/calls/c1", "", "read", true},
		{"query", "POST", "/v1/models/{m}/query", `{"sql":"select 1"}`, "read", true},
		{"query page", "GET", "/v1/models/{m}/query?result=r1&page=2", "", "read", true},
		{"get model", "GET", "/v1/models/{m}", "", "read", true},
		{"get request", "GET", "/v1/models/{m}/requests/r1", "", "read", true},
		{"events", "GET", "/v1/models/{m}/events", "", "read", true},
		{"snapshots", "GET", "/v1/models/{m}/snapshots", "", "read", true},
		{"download", "GET", "/v1/models/{m}/snapshots/latest/model.duckdb", "", "read", true},
		{"functions list", "GET", "/v1/models/{m}/functions", "", "read", true},
		{"function get", "GET", "/v1/models/{m}/functions/f", "", "read", true},
		{"function put", "PUT", "/v1/models/{m}/functions/f", `{"sql":"select 1"}`, "admin", true},
		{"function delete", "DELETE", "/v1/models/{m}/functions/f", "", "admin", true},
		{"pin", "POST", "/v1/models/{m}/snapshots/latest/pins", "", "admin", true},
		{"renew pin", "PUT", "/v1/models/{m}/snapshots/1/pins/p1", "", "admin", true},
		{"unpin", "DELETE", "/v1/models/{m}/snapshots/1/pins/p1", "", "admin", true},
		{"list models", "GET", "/v1/models", "", "", false},
		{"workers", "GET", "/v1/workers", "", "admin or work", false},
	}
	for _, role := range roles {
		for _, a := range actions {
			for _, model := range []string{"sales", "hr"} {
				if !a.onModel && model == "hr" {
					continue
				}
				fill := func(s string) string { return strings.ReplaceAll(s, "{m}", model) }
				status, body := env.statusAs(t, role, a.method, fill(a.path), fill(a.body))
				may := (a.needs == "" || strings.Contains(a.needs, role)) && (model == "sales" || !a.onModel)
				what := role + " " + a.name + " " + model + ": " + body
				if !may {
					require.Equal(t, http.StatusForbidden, status, what)
					require.Contains(t, body, `"permission_denied"`, what)
					require.Contains(t, body, "principal "+role+"r", what)
					if a.onModel {
						require.Contains(t, body, "may not "+a.needs+" model "+model, what)
					}
					continue
				}
				require.NotContains(t, []int{http.StatusUnauthorized, http.StatusForbidden, http.StatusInternalServerError}, status, what)
			}
		}
	}
}
