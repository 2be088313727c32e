package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The names /mcp gives a session do not depend on how many servers its
// caller sees: with one server they are already prefixed, a second server
// (added through the API, public) adds its own names and leaves the first
// server's valid, and the session hears tools/list_changed on its stream.
func TestToolNamesStayValidWhenAServerIsAdded(t *testing.T) {
	a, _ := upstream(t, "a")
	late, _ := upstream(t, "late")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q, available_on_public_internet: true}}\n", master, a), nil)
	h := initSession(t, g.URL()+"/mcp", bearer(master))
	if r := post(t, g.URL()+"/mcp", h, rpc("tools/list", 2, `{}`)); !strings.Contains(string(r.body), `"a__echo"`) || strings.Contains(string(r.body), `"name":"echo"`) {
		t.Fatalf("one server's names on /mcp: %s, want a__echo", r.body)
	}
	stream, status := openSSE(t, g.URL()+"/mcp", h)
	if stream == nil {
		t.Fatalf("GET stream: HTTP %d", status)
	}
	defer stream.Close()

	if status, out := admin(t, g.URL(), http.MethodPost, "/v1/mcp/server", map[string]any{
		"server_name": "late", "url": late, "available_on_public_internet": true}); status != http.StatusOK {
		t.Fatalf("POST /v1/mcp/server: HTTP %d %v", status, out)
	}
	for {
		ev, ok := stream.next(30 * time.Second)
		if !ok {
			t.Fatal("no tools/list_changed on the session's stream after a server was added")
		}
		if strings.Contains(ev.data, "notifications/tools/list_changed") {
			break
		}
	}
	var listed string
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(listed, `"late__echo"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the added server's tools never listed: %s", listed)
		}
		listed = string(post(t, g.URL()+"/mcp", h, rpc("tools/list", 3, `{}`)).body)
	}
	if !strings.Contains(listed, `"a__echo"`) {
		t.Fatalf("after the second server: %s", listed)
	}
	if r := post(t, g.URL()+"/mcp", h, rpc("tools/call", 4, `{"name":"a__echo","arguments":{"text":"same name"}}`)); !strings.Contains(string(r.body), "same name") {
		t.Fatalf("the first server's name after a second came: %s", r.body)
	}
}

// LiteLLM's per-server URL /{server}/mcp serves that server alone, with its
// bare names, as /mcp/{server} does, to a real client.
func TestLiteLLMServerFirstURL(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}, b: {url: %q}}\n", master, a, b), nil)
	cs, err := connect(t, g.URL()+"/b/mcp", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if got := callText(t, cs, "echo", "via /b/mcp"); got != "via /b/mcp" {
		t.Fatalf("echo on /b/mcp answered %q", got)
	}
	if r := post(t, g.URL()+"/nope/mcp", bearer(master), initBody); r.status != http.StatusNotFound {
		t.Fatalf("/nope/mcp: HTTP %d %s, want the unknown server's 404", r.status, r.body)
	}
}
