package ingress

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// The REST routes that pick servers for the caller answer a denial as an
// error naming the reason, never as an empty 200 (DESIGN.md: "A denial is an
// explicit error with a reason, never a silent empty 200").

// restPickRoutes are the routes that list or probe the caller's servers.
var restPickRoutes = []string{"/v1/mcp/tools", "/mcp-rest/tools/list", "/v1/mcp/server/health"}

// wantRESTDenial checks a REST error: status, code and a message naming what
// was refused; the caller's key never appears.
func wantRESTDenial(t *testing.T, what string, r adminResp, status int, code, msg string) {
	t.Helper()
	b := restBody(t, r)
	if r.status != status || b.Error.Code != code || b.Error.Message != msg {
		t.Fatalf("%s: HTTP %d %s; want %d %s %q", what, r.status, r.body, status, code, msg)
	}
	if strings.Contains(r.body, testUserKey) || strings.Contains(r.body, testMasterKey) {
		t.Fatalf("%s: the answer holds a key: %s", what, r.body)
	}
}

// A caller that may use no server: each route says why. Visible servers none
// of which the key may use: NOT_PERMITTED (403 FORBIDDEN on REST) naming the
// key by its alias; no visible server at all: UNKNOWN_SERVER, as /mcp answers.
// An empty list is still the answer when the caller may use servers that
// simply have no tools.
func TestRESTNoUsableServerIsAnError(t *testing.T) {
	// 127.0.0.1 is external here: alice's github is hidden, and pub, the
	// one visible server, is not hers.
	ext := newRegEnv(t, Options{InternalRanges: prefixes("10.0.0.0/8")})
	for _, path := range []string{"/v1/mcp/tools", "/mcp-rest/tools/list", "/mcp-rest/tools/list?format=openai", "/v1/mcp/server/health"} {
		t.Run("none permitted "+path, func(t *testing.T) {
			wantRESTDenial(t, path, ext.do(t, "GET", path, testUserKey, ""),
				http.StatusForbidden, "MCPBUS_FORBIDDEN", "key 'alice' may not use any MCP server")
			if routed := ext.fake.routedCalls(); len(routed) != 0 {
				t.Fatalf("a refused caller's request was routed: %+v", routed)
			}
		})
	}

	// No server visible at all (only internal ones, an external caller): the
	// same answer for the master key and any other, which confirms nothing
	// about the hidden servers.
	hidden := newRegEnv(t, Options{InternalRanges: prefixes("10.0.0.0/8")})
	hidden.fake.setServers(fakeServers[:2])
	for _, path := range restPickRoutes {
		t.Run("none visible "+path, func(t *testing.T) {
			for _, key := range []string{testMasterKey, testUserKey} {
				wantRESTDenial(t, path, hidden.do(t, "GET", path, key, ""),
					http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", "no MCP server is available to this caller")
			}
		})
	}

	// A usable server that has no tools: the empty list is the answer.
	quiet := newRegEnv(t, Options{InternalRanges: prefixes("10.0.0.0/8")})
	quiet.fake.setServers([]bus.ServerSpec{{Name: "quiet", Public: true}})
	t.Run("usable server without tools", func(t *testing.T) {
		for _, path := range restPickRoutes[:2] {
			r := quiet.do(t, "GET", path, testMasterKey, "")
			if r.status != http.StatusOK || r.body != `{"tools":[]}` {
				t.Fatalf("%s, one usable server without tools: HTTP %d %s", path, r.status, r.body)
			}
		}
		var health []healthStatus
		r := quiet.do(t, "GET", "/v1/mcp/server/health", testMasterKey, "")
		if err := json.Unmarshal([]byte(r.body), &health); err != nil || r.status != http.StatusOK || len(health) != 1 || health[0].ServerID != "quiet" {
			t.Fatalf("health, one usable server: HTTP %d %s", r.status, r.body)
		}
	})
}

// GET /v1/mcp/server/health?server_ids=...: every server named must be one the
// caller may see and use. Unknown and hidden answer alike (404 naming the
// server), not permitted is 403 naming key and server; none is dropped.
func TestServerHealthNamedServers(t *testing.T) {
	in := newRegEnv(t, Options{})
	ext := newRegEnv(t, Options{InternalRanges: prefixes("10.0.0.0/8")})
	unknownAnswer := func(t *testing.T) adminResp {
		return in.do(t, "GET", "/v1/mcp/server/health?server_ids=nope", testMasterKey, "")
	}
	t.Run("unknown", func(t *testing.T) {
		wantRESTDenial(t, "an unknown server", unknownAnswer(t), http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "nope"`)
	})
	t.Run("hidden", func(t *testing.T) {
		// github is internal-only: hidden from an external caller, even the master key.
		hidden := ext.do(t, "GET", "/v1/mcp/server/health?server_ids=github", testMasterKey, "")
		wantRESTDenial(t, "a hidden server", hidden, http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "github"`)
		if unknown := unknownAnswer(t); strings.ReplaceAll(hidden.body, "github", "nope") != unknown.body {
			t.Fatalf("a hidden server answers unlike an unknown one:\n%s\n%s", hidden.body, unknown.body)
		}
	})
	for _, c := range []struct {
		name, query, key string
		status           int
		code, msg        string
	}{
		{"not permitted", "server_ids=pub", testUserKey, http.StatusForbidden, "MCPBUS_FORBIDDEN", "key 'alice' may not use MCP server 'pub'"},
		{"not permitted, server_id", "server_id=pub", testUserKey, http.StatusForbidden, "MCPBUS_FORBIDDEN", "key 'alice' may not use MCP server 'pub'"},
		{"permitted and unknown", "server_ids=github,nope", testUserKey, http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "nope"`},
		{"permitted and not permitted", "server_ids=github,pub", testUserKey, http.StatusForbidden, "MCPBUS_FORBIDDEN", "key 'alice' may not use MCP server 'pub'"},
	} {
		t.Run(c.name, func(t *testing.T) {
			wantRESTDenial(t, "health?"+c.query, in.do(t, "GET", "/v1/mcp/server/health?"+c.query, c.key, ""), c.status, c.code, c.msg)
		})
	}
	t.Run("usable", func(t *testing.T) {
		for query, want := range map[string]string{"server_ids=github": "github", "server_ids=pub,github&server_id=other": "github,other,pub"} {
			key := testUserKey
			if strings.Contains(query, "pub") {
				key = testMasterKey
			}
			r := in.do(t, "GET", "/v1/mcp/server/health?"+query, key, "")
			var got []healthStatus
			_ = json.Unmarshal([]byte(r.body), &got)
			var ids []string
			for _, h := range got {
				ids = append(ids, h.ServerID)
			}
			if r.status != http.StatusOK || strings.Join(ids, ",") != want {
				t.Fatalf("health?%s: HTTP %d %s", query, r.status, r.body)
			}
		}
	})
}
