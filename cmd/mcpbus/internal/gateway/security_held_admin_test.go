package gateway

// Held attack 4: keys other than the master key (a plain virtual key, a team
// member's key, a key listing every server and tool, a key dressed up as an
// admin) are refused on every admin route (/key/*, /team/*, /v1/mcp/server
// reads and writes) with an explicit error, whatever the method and however
// the key is sent, and nothing they asked for happens.
//
// Covered elsewhere (not repeated here):
//   - TestVirtualKeyPermissions (access_test.go): GET /key/list with a virtual
//     key is a 403 naming the master key.
//   - TestRegistryAPI (registry_api_test.go): GET, GET {id}, POST, PUT and
//     DELETE /v1/mcp/server with a plain virtual key are 403.
//   - Unit level: ingress TestAdminOnlyMasterKey, TestAdminWrongMethod,
//     TestRegistryCRUDIsMasterKeyOnly (every route with a fake auth service),
//     auth TestOpenModeIsAnonymousNotAdmin.
// Added here: team keys, keys with every server and tool, a key created with
// every admin-looking field LiteLLM or a guesser might try; the key in
// Authorization and in x-litellm-api-key with and without "Bearer "; every
// route with its own method and with every other one; DELETE of
// /v1/mcp/server/health (a server id the health route shadows); proof that
// no key, team or server changed; open mode refusing everyone end to end.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// heldAdminRoute is one admin endpoint and a body that would change
// something if it were accepted.
type heldAdminRoute struct {
	method, path, body string
}

func heldAdminRoutes(ownToken, otherToken, teamID string) []heldAdminRoute {
	return []heldAdminRoute{
		{"POST", "/key/generate", `{"key_alias":"minted-by-a-user","mcp_servers":["a","b"]}`},
		{"GET", "/key/info?key=" + otherToken, ""},
		{"GET", "/key/list?return_full_object=true", ""},
		{"POST", "/key/update", `{"key":"` + ownToken + `","mcp_servers":["a","b"],"rpm_limit":0,"blocked":false}`},
		{"POST", "/key/delete", `{"keys":["` + otherToken + `"]}`},
		{"POST", "/team/new", `{"team_id":"users-own-team","mcp_servers":["a","b"]}`},
		{"GET", "/team/info?team_id=" + teamID, ""},
		{"GET", "/team/list", ""},
		{"POST", "/team/update", `{"team_id":"` + teamID + `","mcp_servers":["a","b"],"blocked":false}`},
		{"POST", "/team/delete", `{"team_ids":["` + teamID + `"]}`},
		{"GET", "/v1/mcp/server", ""},
		{"GET", "/v1/mcp/server/a", ""},
		{"POST", "/v1/mcp/server", `{"server_name":"planted","url":"http://127.0.0.1:1/mcp"}`},
		{"PUT", "/v1/mcp/server", `{"server_id":"a","url":"http://127.0.0.1:1/redirected","available_on_public_internet":true}`},
		{"DELETE", "/v1/mcp/server/a", ""},
		{"DELETE", "/v1/mcp/server/health", ""},
	}
}

// heldAdminState is what the master key sees of keys, teams and servers.
func heldAdminState(t *testing.T, base string) string {
	t.Helper()
	var parts []string
	for _, path := range []string{"/key/list?return_full_object=true", "/team/list", "/v1/mcp/server"} {
		r := heldDo(t, "GET", base+path, bearer(master), "")
		if r.status != http.StatusOK {
			t.Fatalf("GET %s as master: HTTP %d %s", path, r.status, r.body)
		}
		parts = append(parts, string(r.body))
	}
	return strings.Join(parts, "\n")
}

func TestSecurityHeldAdminNonMasterKeysRefusedOnEveryRoute(t *testing.T) {
	a, _ := heldHTTPUpstream(t, "a")
	b, _ := heldHTTPUpstream(t, "b")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}, b: {url: %q}}\n", master, a, b), nil)
	base := g.URL()
	if status, out := admin(t, base, "POST", "/team/new", map[string]any{"team_id": "everything", "mcp_servers": []string{"a", "b"}}); status != http.StatusOK {
		t.Fatalf("/team/new: HTTP %d %v", status, out)
	}
	keys := map[string]string{
		"plain":        generateKey(t, base, map[string]any{"key_alias": "held-plain"}),
		"team":         generateKey(t, base, map[string]any{"key_alias": "held-team", "team_id": "everything"}),
		"every-server": generateKey(t, base, map[string]any{"key_alias": "held-every", "mcp_servers": []string{"a", "b"}, "mcp_tool_permissions": map[string][]string{"a": {"echo", "add", "slow"}, "b": {"echo", "add", "slow"}}}),
		"admin-looking": generateKey(t, base, map[string]any{"key_alias": "master", "user_role": "proxy_admin", "admin": true,
			"permissions": map[string]any{"admin": true, "all_servers": true}, "metadata": map[string]any{"role": "admin", "is_admin": true}}),
	}
	tokens := map[string]string{}
	for name, k := range keys {
		tokens[name] = bus.HashKey(k)
	}
	before := heldAdminState(t, base)
	methods := []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	for kname, key := range keys {
		other := tokens["plain"]
		if kname == "plain" {
			other = tokens["team"]
		}
		for sname, spell := range map[string]http.Header{
			"authorization":             {"Authorization": {"Bearer " + key}},
			"x-litellm-api-key":         {"X-Litellm-Api-Key": {key}},
			"x-litellm-api-key, bearer": {"X-Litellm-Api-Key": {"Bearer " + key}},
		} {
			for _, rt := range heldAdminRoutes(tokens[kname], other, "everything") {
				for _, m := range methods {
					if rt.path == "/v1/mcp/server/health" && m == "GET" {
						continue // the public health route, not an admin one
					}
					h := spell.Clone()
					h.Set("Content-Type", "application/json")
					r := heldDo(t, m, base+rt.path, h, rt.body)
					code, msg := heldRESTError(r.body)
					what := fmt.Sprintf("%s key in %s, %s %s", kname, sname, m, rt.path)
					if strings.Contains(string(r.body), key) {
						t.Errorf("%s: the answer echoes the key", what)
					}
					if m == rt.method {
						if r.status != http.StatusForbidden || code != "MCPBUS_FORBIDDEN" || !strings.Contains(msg, "only the master key") {
							t.Errorf("%s: HTTP %d %s, want 403 MCPBUS_FORBIDDEN naming the master key", what, r.status, r.body)
						}
						continue
					}
					if r.status != http.StatusForbidden && r.status != http.StatusMethodNotAllowed ||
						code != "MCPBUS_FORBIDDEN" && code != "MCPBUS_METHOD_NOT_ALLOWED" {
						t.Errorf("%s: HTTP %d %s, want an explicit 403 or 405", what, r.status, r.body)
					}
				}
			}
		}
	}
	if after := heldAdminState(t, base); after != before {
		t.Errorf("refused admin requests changed keys, teams or servers:\nbefore: %s\nafter:  %s", before, after)
	}
	// Each key is still what it was made: no server or admin right added.
	for kname, key := range keys {
		s := initSession(t, base+"/mcp/a", bearer(key))
		if r := post(t, base+"/mcp/a", s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"still-usable"}}`)); !strings.Contains(string(r.body), "still-usable") {
			t.Errorf("%s key after the attempts: %s", kname, r.body)
		}
	}
	// The master key, sent every way, is let in: the routes above were real.
	for i, spell := range []http.Header{bearer(master), {"X-Litellm-Api-Key": {master}}, {"X-Litellm-Api-Key": {"Bearer " + master}}} {
		for _, path := range []string{"/key/list", "/team/list", "/v1/mcp/server"} {
			if r := heldDo(t, "GET", base+path, spell, ""); r.status != http.StatusOK {
				t.Errorf("master key, spelling %d, on %s: HTTP %d %s", i, path, r.status, r.body)
			}
		}
	}
}

// Without a master key (open mode, loopback only) every caller is anonymous
// and no one manages keys, teams or servers: not without a key, not with any.
func TestSecurityHeldAdminOpenModeRefusesEveryone(t *testing.T) {
	a, _ := heldHTTPUpstream(t, "a")
	g := startGateway(t, fmt.Sprintf("mcp_servers: {a: {url: %q}}\n", a), nil)
	base := g.URL()
	for i, h := range []http.Header{nil, bearer("sk-anything-goes-1234567890"), bearer(master), {"X-Litellm-Api-Key": {"anonymous"}}} {
		for _, rt := range heldAdminRoutes("0000", "1111", "t") {
			hh := h.Clone()
			if hh == nil {
				hh = http.Header{}
			}
			hh.Set("Content-Type", "application/json")
			r := heldDo(t, rt.method, base+rt.path, hh, rt.body)
			if code, _ := heldRESTError(r.body); r.status != http.StatusForbidden || code != "MCPBUS_FORBIDDEN" {
				t.Errorf("open mode, caller %d, %s %s: HTTP %d %s, want 403", i, rt.method, rt.path, r.status, r.body)
			}
		}
	}
	// The servers are untouched and the one MCP route still works.
	r := heldDo(t, "GET", base+"/mcp-rest/tools/list", nil, "")
	var l toolList
	_ = json.Unmarshal(r.body, &l)
	names := strings.Split(l.names(), ",")
	sort.Strings(names)
	if r.status != http.StatusOK || strings.Join(names, ",") != "a/add,a/ask,a/echo,a/slow" {
		t.Errorf("open mode after the refused writes: HTTP %d %s", r.status, r.body)
	}
}
