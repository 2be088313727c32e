package gateway

// Security suite, attacks 3 and 11: what the gateway reads from a message
// must be what the upstream reads from the same bytes, and a message that is
// not one JSON-RPC request, notification or response is refused, not
// accepted with a silent 202.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
)

// callLog is a demo upstream that records the params of every tools/call
// that reaches it, as bytes.
type callLog struct {
	mu    sync.Mutex
	names []string
}

func (c *callLog) upstream(t *testing.T) string {
	t.Helper()
	next := demo.Handler("pub")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var m struct {
			Method string          `json:"method"`
			Params json.RawMessage `json:"params"`
		}
		if json.Unmarshal(body, &m) == nil && m.Method == "tools/call" {
			c.mu.Lock()
			c.names = append(c.names, string(m.Params))
			c.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

func (c *callLog) ran() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.names...)
}

// Attack 3: a key allowed only echo on pub, and a server whose
// disallowed_tools hides add, sent params naming two tools: the gateway
// checked one, the upstream ran the other.
func TestSecurityToolNameIsReadAsTheUpstreamReadsIt(t *testing.T) {
	var calls callLog
	u := calls.upstream(t)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  pub: {url: %q}
  filtered: {url: %q, disallowed_tools: [add]}
`, master, u, u), nil)
	// pub and filtered: /mcp aggregates them (router), /mcp/pub goes
	// straight to pub's workers.
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "echo-only", "mcp_servers": []string{"pub", "filtered"},
		"mcp_tool_permissions": map[string][]string{"pub": {"echo"}}})
	args := `"arguments":{"a":1,"b":2,"text":"x"}`
	smuggled := []string{
		`{"name":"add","NAME":"echo",` + args + `}`,
		`{"NAME":"echo","name":"add",` + args + `}`,
		`{"name":"add","Name":"echo",` + args + `}`,
		`{"name":"add","nAmE":"echo",` + args + `}`,
		`{"name":"add","n\u0041me":"echo",` + args + `}`,
		`{"name":"echo","name":"add",` + args + `}`,
		`{"name":"add","name":"echo",` + args + `}`,
		`{"n\u0061me":"add","name":"echo",` + args + `}`,
		`{"NAME":"add",` + args + `}`,
	}
	for _, c := range []struct {
		what, path string
		h          http.Header
		allowed    string // the name the gateway lets through
	}{
		{"key's tool permissions on /mcp/pub", "/mcp/pub", bearer(key), "echo"},
		{"key's tool permissions, aggregated /mcp", "/mcp", bearer(key), "echo"},
		{"disallowed_tools on /mcp/filtered", "/mcp/filtered", bearer(master), "echo"},
	} {
		s := initSession(t, g.URL()+c.path, c.h)
		for i, params := range smuggled {
			if c.path == "/mcp" {
				params = strings.ReplaceAll(strings.ReplaceAll(params, `"add"`, `"pub__add"`), `"echo"`, `"pub__echo"`)
			}
			r := post(t, g.URL()+c.path, s, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":%s}`, i+10, params))
			if r.rpcErr.Code == 0 {
				t.Errorf("%s: params %s were answered as a call: %s", c.what, params, r.body)
			}
		}
		// The plain call still works.
		name := c.allowed
		if c.path == "/mcp" {
			name = "pub__" + name
		}
		if r := post(t, g.URL()+c.path, s, rpc("tools/call", 99, `{"name":"`+name+`",`+args+`}`)); r.rpcErr.Code != 0 {
			t.Errorf("%s: the permitted call failed: %s", c.what, r.body)
		}
	}
	// Only the three plain calls reached the upstream, each naming echo
	// alone.
	for _, params := range calls.ran() {
		if strings.Contains(params, "add") || strings.Count(strings.ToLower(params), `"name"`) != 1 {
			t.Errorf("the upstream got tools/call %s: a permission was bypassed", params)
		}
	}
	if n := len(calls.ran()); n != 3 {
		t.Fatalf("the upstream got %d tools/call, want the 3 plain ones: %v", n, calls.ran())
	}
}

// Attack 11: messages that are neither a request, a notification nor a
// response used to get 202 and vanish.
func TestSecurityMalformedMessagesAreRefused(t *testing.T) {
	u, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q}\n", master, u), nil)
	h := initSession(t, g.URL()+"/mcp/demo", bearer(master))
	bad := map[string]string{
		"id alone":                  `{"jsonrpc":"2.0","id":1}`,
		"string id alone":           `{"jsonrpc":"2.0","id":"x"}`,
		"empty method, with id":     `{"jsonrpc":"2.0","id":1,"method":""}`,
		"empty method, no id":       `{"jsonrpc":"2.0","method":""}`,
		"result and error":          `{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}`,
		"method and result":         `{"jsonrpc":"2.0","method":"notifications/initialized","result":{}}`,
		"error without code":        `{"jsonrpc":"2.0","id":1,"error":{"message":"x"}}`,
		"upper-case member":         `{"jsonrpc":"2.0","id":1,"METHOD":"tools/list"}`,
		"method twice":              `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"ping"}`,
		"params not an object":      `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":"x"}`,
		"no jsonrpc":                `{"id":1,"method":"tools/list"}`,
		"response with null result": `{"jsonrpc":"2.0","id":1,"result":null,"error":null}`,
	}
	for what, body := range bad {
		r := post(t, g.URL()+"/mcp/demo", h, body)
		if r.status != http.StatusBadRequest || r.rpcErr.Code != -32600 || r.rpcErr.Message == "" {
			t.Errorf("POST /mcp/demo %s: want 400 with -32600 and a reason, got HTTP %d %s", what, r.status, r.body)
		}
	}
	// The legacy transport reads messages the same way.
	stream, sid := openLegacyStream(t, g.URL()+"/sse/demo", bearer(master))
	defer stream.Close()
	for what, body := range bad {
		r := postRaw(g.URL()+"/messages?session_id="+sid, bearer(master), body)
		if r.status != http.StatusBadRequest || r.rpcErr.Code != -32600 {
			t.Errorf("POST /messages %s: want 400 with -32600, got HTTP %d %s", what, r.status, r.body)
		}
	}
}
