package ingress

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// The organization routes: LiteLLM's paths and methods, bodies relayed to
// the subjects of the same name, GET info built from its query.
func TestAdminOrganizationRoutes(t *testing.T) {
	env := newAdminEnv(t, true)
	body := `{"organization_id":"acme","organization_alias":"Acme","models":["gpt-4o"],"max_budget":10}`
	for _, c := range []struct{ method, path, subject string }{
		{http.MethodPost, "/organization/new", bus.SubjectOrgNew},
		{http.MethodPatch, "/organization/update", bus.SubjectOrgUpdate},
		{http.MethodDelete, "/organization/delete", bus.SubjectOrgDelete},
		{http.MethodPost, "/organization/member_add", bus.SubjectOrgMemberAdd},
		{http.MethodDelete, "/organization/member_delete", bus.SubjectOrgMemberDelete},
	} {
		r := env.do(t, c.method, c.path, testMasterKey, body)
		calls := env.fake.taken()
		if r.status != http.StatusOK || r.body != body || len(calls) != 1 || calls[0].subject != c.subject || calls[0].data != body {
			t.Errorf("%s %s: %d %q %+v", c.method, c.path, r.status, r.body, calls)
		}
	}
	for _, c := range []struct{ path, subject, want string }{
		{"/organization/info?organization_id=acme", bus.SubjectOrgInfo, `{"organization_id":"acme"}`},
		{"/organization/list", bus.SubjectOrgList, `{}`},
	} {
		r := env.do(t, http.MethodGet, c.path, testMasterKey, "")
		calls := env.fake.taken()
		if r.status != http.StatusOK || len(calls) != 1 || calls[0].subject != c.subject || calls[0].data != c.want {
			t.Errorf("%s: %d %+v", c.path, r.status, calls)
		}
	}
	r := env.do(t, http.MethodGet, "/organization/info", testMasterKey, "")
	if b := restBody(t, r); r.status != http.StatusBadRequest || !strings.Contains(b.Error.Message, "query parameter organization_id is required") {
		t.Errorf("info without organization_id: %d %s", r.status, r.body)
	}
	r = env.do(t, http.MethodPost, "/organization/update", testMasterKey, body)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "PATCH" {
		t.Errorf("POST /organization/update: %d %v", r.status, r.header)
	}
	if calls := env.fake.taken(); len(calls) != 0 {
		t.Errorf("refused requests reached the service: %+v", calls)
	}
}

// A key that administers an organization gets through to the key, team and
// organization routes (auth scopes it), with its own identity in the
// envelope, never the master's; every other API that only the master key
// may use refuses it, before reading its body or asking the bus.
func TestAdminLetsOrgAdminsThroughToItsRoutesOnly(t *testing.T) {
	env := newAdminEnv(t, true)
	for _, rt := range adminRoutes {
		path := rt.path
		if rt.required != "" {
			path += "?" + rt.required + "=x"
		}
		r := env.do(t, rt.method, path, testOrgAdminKey, `{"team_id":"tx"}`)
		calls := env.fake.taken()
		if r.status != http.StatusOK || len(calls) != 1 || calls[0].subject != rt.subject {
			t.Fatalf("%s %s as an org admin: %d %s %+v", rt.method, rt.path, r.status, r.body, calls)
		}
		h := calls[0].header
		if h.Get(bus.HeaderKeyID) != bus.HashKey(testOrgAdminKey) || h.Get(bus.HeaderAdmin) != "" || h.Get(bus.HeaderOrg) != "x" {
			t.Errorf("%s: envelope %v", rt.path, h)
		}
	}
	for _, c := range []struct{ method, path, want string }{
		{http.MethodGet, "/v1/mcp/server", "only the master key may manage MCP servers"},
		{http.MethodPost, "/v1/mcp/server", "only the master key may manage MCP servers"},
		{http.MethodGet, "/v1/mcp/server/github", "only the master key may manage MCP servers"},
		{http.MethodDelete, "/v1/mcp/server/github", "only the master key may manage MCP servers"},
		{http.MethodPost, "/v1/mcp/server/github/drain", "only the master key may manage MCP servers"},
		{http.MethodPost, "/v1/mcp/server/github/canary", "only the master key may manage MCP servers"},
		{http.MethodPost, "/v1/mcp/server/github/canary/promote", "only the master key may manage MCP servers"},
		{http.MethodPost, "/v1/agents", "only the master key may manage agents"},
		{http.MethodDelete, "/v1/agents/helper", "only the master key may manage agents"},
	} {
		r := env.do(t, c.method, c.path, testOrgAdminKey, `{"server_name":"github","url":"http://127.0.0.1:1/mcp"}`)
		if b := restBody(t, r); r.status != http.StatusForbidden || b.Error.Message != c.want {
			t.Errorf("%s %s as an org admin: %d %s", c.method, c.path, r.status, r.body)
		}
	}
	if calls := env.fake.taken(); len(calls) != 0 {
		t.Errorf("refused requests reached the bus: %+v", calls)
	}
}
