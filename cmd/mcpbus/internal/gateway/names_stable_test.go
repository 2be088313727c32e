package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
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
	bustest.Eventually(t, 30*time.Second, "the added server's tools are listed", func() error {
		if listed = string(post(t, g.URL()+"/mcp", h, rpc("tools/list", 3, `{}`)).body); !strings.Contains(listed, `"late__echo"`) {
			return fmt.Errorf("listed %s", listed)
		}
		return nil
	})
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

// ?format=openai without server_id lists every server's tools under the
// names /mcp gives them, so no two functions share a name (OpenAI refuses
// that), and /mcp-rest/tools/call takes such a name without server_id.
func TestOpenAIFormatNamesAreUnique(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}, b: {url: %q}}\n", master, a, b), nil)
	do := func(method, path, body string) (int, []byte) {
		req, _ := http.NewRequest(method, g.URL()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+master)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		recordBody(out)
		return resp.StatusCode, out
	}
	status, body := do(http.MethodGet, "/mcp-rest/tools/list?format=openai", "")
	var fns []struct {
		Function struct{ Name string } `json:"function"`
	}
	if err := json.Unmarshal(body, &fns); err != nil || status != http.StatusOK {
		t.Fatalf("HTTP %d %s", status, body)
	}
	seen := map[string]bool{}
	for _, f := range fns {
		if seen[f.Function.Name] {
			t.Fatalf("function %q listed twice: %s", f.Function.Name, body)
		}
		seen[f.Function.Name] = true
	}
	if !seen["a__echo"] || !seen["b__echo"] {
		t.Fatalf("functions %v, want a__echo and b__echo", seen)
	}
	status, body = do(http.MethodPost, "/mcp-rest/tools/call", `{"name":"b__echo","arguments":{"text":"to b"}}`)
	if status != http.StatusOK || !strings.Contains(string(body), "to b") {
		t.Fatalf("call b__echo without server_id: HTTP %d %s", status, body)
	}
}
