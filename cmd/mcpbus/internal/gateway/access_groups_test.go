package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// LiteLLM's access groups: a key granted a group (object_permission.
// mcp_access_groups) reaches exactly the servers in it, from the config file
// or the registry API, and a server put into the group later becomes
// reachable without touching the key. Every other server is refused with the
// reason, on every route.
func TestAccessGroups(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	c, _ := upstream(t, "c")
	d, recD := upstream(t, "d")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a: {url: %q, access_groups: [eng]}
  b: {url: %q, access_groups: [ops]}
  c: {url: %q}
`, master, a, b, c), nil)
	if status, _, body := rest(t, "POST", g.URL()+"/v1/mcp/server", master,
		fmt.Sprintf(`{"server_name":"d","url":%q,"access_groups":["eng","ops"]}`, d)); status != http.StatusOK {
		t.Fatalf("create d: HTTP %d %s", status, body)
	}
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "eng-bot",
		"object_permission": map[string]any{"mcp_access_groups": []string{"eng"}}})
	h := bearer(key)

	// /mcp aggregates the group's servers only.
	toolServers := func() []string {
		s := initSession(t, g.URL()+"/mcp", h)
		r := post(t, g.URL()+"/mcp", s, rpc("tools/list", 2, ""))
		var list struct{ Tools []struct{ Name string } }
		json.Unmarshal(r.result, &list)
		var servers []string
		for _, tool := range list.Tools {
			server, _, _ := strings.Cut(tool.Name, "__")
			if !slices.Contains(servers, server) {
				servers = append(servers, server)
			}
		}
		slices.Sort(servers)
		return servers
	}
	if got := toolServers(); fmt.Sprint(got) != "[a d]" {
		t.Fatalf("tools/list for group eng lists servers %v, want [a d]", got)
	}
	s := initSession(t, g.URL()+"/mcp", h)
	if r := post(t, g.URL()+"/mcp", s, rpc("tools/call", 3, `{"name":"d__add","arguments":{"a":2,"b":3}}`)); !strings.Contains(string(r.body), `"sum":5`) {
		t.Fatalf("call on a server the group grants (from the API): %s", r.body)
	}
	if len(recD.seen()) == 0 {
		t.Fatal("the call never reached server d")
	}
	// Outside the group: refused with the reason on /mcp/{server}, absent from health.
	for _, server := range []string{"b", "c"} {
		r := post(t, g.URL()+"/mcp/"+server, h, initBody)
		if r.rpcErr.Code != -32030 || r.rpcErr.Message != fmt.Sprintf("key 'eng-bot' may not use MCP server '%s'", server) {
			t.Errorf("server %s outside the group: HTTP %d %s", server, r.status, r.body)
		}
	}
	status, _, body := rest(t, "GET", g.URL()+"/v1/mcp/server/health", key, "")
	var listed []map[string]any
	json.Unmarshal([]byte(body), &listed)
	var names []string
	for _, rec := range listed {
		names = append(names, fmt.Sprint(rec["server_id"]))
	}
	if status != http.StatusOK || fmt.Sprint(names) != "[a d]" {
		t.Fatalf("GET /v1/mcp/server/health for group eng: HTTP %d %v", status, names)
	}

	// Put c into the group: the key reaches it, without a change to the key.
	if status, _, body := rest(t, "PUT", g.URL()+"/v1/mcp/server", master, `{"server_id":"c","access_groups":["eng"]}`); status != http.StatusOK {
		t.Fatalf("put c into eng: HTTP %d %s", status, body)
	}
	bustest.Eventually(t, 10*time.Second, "server c reachable once in the key's group", func() error {
		if r := post(t, g.URL()+"/mcp/c", h, initBody); r.status != http.StatusOK || r.rpcErr.Code != 0 {
			return fmt.Errorf("initialize: HTTP %d %s", r.status, r.body)
		}
		return nil
	})
	assertNoSecrets(t, g, key)
}
