package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// The REST routes that list or probe the caller's servers answer a denial as
// an error naming the reason, never as an empty 200, with real keys, the
// registry and IP classes.
func TestSecurityRESTDenialsNameTheReason(t *testing.T) {
	demo, _ := upstream(t, "demo")
	pub, _ := upstream(t, "pub")
	servers := fmt.Sprintf(`
mcp_servers:
  demo: {url: %q}
  pub: {url: %q, available_on_public_internet: true}
`, demo, pub)
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\n", master)+servers, nil)
	// A key whose servers are none of the gateway's: it may use no server.
	nobody := generateKey(t, g.URL(), map[string]any{"key_alias": "nobody", "mcp_servers": []string{"ghost"}})
	echoer := generateKey(t, g.URL(), map[string]any{"key_alias": "echoer", "mcp_servers": []string{"demo"}})
	routes := []string{"/v1/mcp/tools", "/mcp-rest/tools/list", "/v1/mcp/server/health"}

	for _, path := range routes {
		t.Run("none permitted "+path, func(t *testing.T) {
			status, _, body := rest(t, "GET", g.URL()+path, nobody, "")
			wantREST(t, path+" for a key that may use no server", status, body, http.StatusForbidden, "MCPBUS_FORBIDDEN",
				"key 'nobody' may not use any MCP server")
		})
	}

	// Health, servers named: unknown 404, not permitted 403, each named.
	for _, c := range []struct {
		name, query, key string
		status           int
		code, msg        string
	}{
		{"unknown", "server_ids=nope", master, http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "nope"`},
		{"not permitted", "server_ids=pub", echoer, http.StatusForbidden, "MCPBUS_FORBIDDEN", "key 'echoer' may not use MCP server 'pub'"},
		{"permitted and not permitted", "server_ids=demo,pub", echoer, http.StatusForbidden, "MCPBUS_FORBIDDEN", "key 'echoer' may not use MCP server 'pub'"},
	} {
		t.Run("health "+c.name, func(t *testing.T) {
			status, _, body := rest(t, "GET", g.URL()+"/v1/mcp/server/health?"+c.query, c.key, "")
			wantREST(t, "health?"+c.query, status, body, c.status, c.code, c.msg)
		})
	}
	t.Run("health of the key's server", func(t *testing.T) {
		status, _, body := rest(t, "GET", g.URL()+"/v1/mcp/server/health?server_ids=demo", echoer, "")
		var health []map[string]any
		_ = json.Unmarshal([]byte(body), &health)
		if status != http.StatusOK || len(health) != 1 || health[0]["server_id"] != "demo" {
			t.Fatalf("health of the key's server: HTTP %d %s", status, body)
		}
	})

	// 127.0.0.1 outside mcp_internal_ip_ranges: demo is hidden, and answers
	// exactly like a server that does not exist.
	ext := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s, mcp_internal_ip_ranges: [\"10.0.0.0/8\"], external_routes: [mcp, admin]}\n", master)+servers, nil)
	t.Run("health hidden", func(t *testing.T) {
		hiddenStatus, _, hidden := rest(t, "GET", ext.URL()+"/v1/mcp/server/health?server_ids=demo", master, "")
		wantREST(t, "health of a hidden server", hiddenStatus, hidden, http.StatusNotFound, "MCPBUS_UNKNOWN_SERVER", `unknown MCP server "demo"`)
		unknownStatus, _, unknown := rest(t, "GET", ext.URL()+"/v1/mcp/server/health?server_ids=nope", master, "")
		if unknownStatus != hiddenStatus || strings.ReplaceAll(hidden, `\"demo\"`, `\"nope\"`) != unknown {
			t.Fatalf("hidden and unknown differ:\n%s\n%s", hidden, unknown)
		}
	})
	// demo is the key's only server, and it is hidden: the key may use none
	// of what this caller sees.
	demoKey := generateKey(t, ext.URL(), map[string]any{"key_alias": "demo-only", "mcp_servers": []string{"demo"}})
	for _, path := range routes {
		t.Run("only hidden servers permitted "+path, func(t *testing.T) {
			status, _, body := rest(t, "GET", ext.URL()+path, demoKey, "")
			wantREST(t, path+" for a key whose servers are hidden", status, body, http.StatusForbidden, "MCPBUS_FORBIDDEN",
				"key 'demo-only' may not use any MCP server")
		})
	}

	for _, b := range scanBodiesFor([]string{nobody, echoer, demoKey}) {
		t.Errorf("an answer shows a key: %s", b)
	}
}
