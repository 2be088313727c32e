package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A server POSTed through the registry API becomes callable through /mcp,
// with no restart; DELETE takes it away again. (The 30 s bounds only turn a
// change that never arrives into a failure.)
func TestServerAddedByAPIIsLive(t *testing.T) {
	a, _ := upstream(t, "a")
	late, rec := upstream(t, "late")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}}\n", master, a), nil)
	registerSecret("late-upstream-token")
	status, out := admin(t, g.URL(), http.MethodPost, "/v1/mcp/server", map[string]any{
		"server_name": "late", "url": late, "auth_type": "bearer_token", "auth_value": "late-upstream-token"})
	if status != http.StatusOK {
		t.Fatalf("POST /v1/mcp/server: HTTP %d %v", status, out)
	}
	// The registry answers once it has the record; the server's worker
	// starts from it a moment later, on every worker host.
	s := initSession(t, g.URL()+"/mcp/late", bearer(master))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		r := post(t, g.URL()+"/mcp/late", s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"live"}}`))
		if strings.Contains(string(r.body), `"live"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the POSTed server was not callable within 30s: %s", r.body)
		}
	}
	if got := rec.seen()[0].Get("Authorization"); got != "Bearer late-upstream-token" {
		t.Fatalf("the POSTed credential was not used upstream: %q", got)
	}
	if status, out := admin(t, g.URL(), http.MethodDelete, "/v1/mcp/server/late", nil); status != http.StatusOK {
		t.Fatalf("DELETE: HTTP %d %v", status, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := post(t, g.URL()+"/mcp/late", s, rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"x"}}`))
		if r.status == http.StatusNotFound || r.rpcErr.Code != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the deleted server still takes calls: %s", r.body)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
