package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
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
	bustest.Eventually(t, 30*time.Second, "the POSTed server is callable", func() error {
		if r := post(t, g.URL()+"/mcp/late", s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"live"}}`)); !strings.Contains(string(r.body), `"live"`) {
			return fmt.Errorf("HTTP %d %s", r.status, r.body)
		}
		return nil
	})
	if got := rec.seen()[0].Get("Authorization"); got != "Bearer late-upstream-token" {
		t.Fatalf("the POSTed credential was not used upstream: %q", got)
	}
	if status, out := admin(t, g.URL(), http.MethodDelete, "/v1/mcp/server/late", nil); status != http.StatusOK {
		t.Fatalf("DELETE: HTTP %d %v", status, out)
	}
	bustest.Eventually(t, 30*time.Second, "the deleted server refuses calls", func() error {
		if r := post(t, g.URL()+"/mcp/late", s, rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"x"}}`)); r.status != http.StatusNotFound && r.rpcErr.Code == 0 {
			return fmt.Errorf("it still takes them: HTTP %d %s", r.status, r.body)
		}
		return nil
	})
}
