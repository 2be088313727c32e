package llmrouter

import (
	"encoding/json"
	"testing"
)

// A server_url is this gateway's only as the client reached it, or
// LiteLLM's label; anything else (another host, port or scheme, user info,
// a query, another path, a server name that is no name) is not.
func TestGatewayServer(t *testing.T) {
	base := "http://127.0.0.1:4000"
	for raw, want := range map[string]string{
		"http://127.0.0.1:4000/mcp":        "",
		"http://127.0.0.1:4000/mcp/":       "",
		"http://127.0.0.1:4000/mcp/github": "github",
		"HTTP://127.0.0.1:4000/mcp/github": "github",
		"litellm_proxy":                    "",
		"litellm_proxy/mcp":                "",
		"litellm_proxy/mcp/jira":           "jira",
	} {
		if got, ok := gatewayServer(raw, base); !ok || got != want {
			t.Errorf("%s: %q %v, want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{
		"http://127.0.0.1:4001/mcp", "https://127.0.0.1:4000/mcp", "http://evil.example/mcp", "http://u:p@127.0.0.1:4000/mcp",
		"http://127.0.0.1:4000/mcp?x=1", "http://127.0.0.1:4000/sse", "http://127.0.0.1:4000/mcp/a/b", "http://127.0.0.1:4000/mcp/a.b",
		"litellm_proxy/mcp/a/b", "litellm_proxyx", "litellm_proxy/sse", "", "/mcp",
	} {
		if got, ok := gatewayServer(raw, base); ok {
			t.Errorf("%s: taken as this gateway's (server %q)", raw, got)
		}
	}
	if _, ok := gatewayServer("http://127.0.0.1:4000/mcp", ""); ok {
		t.Error("a URL matched with no base known")
	}
}

// require_approval, OpenAI's shapes: omitted and "always" ask for every
// tool, "never" for none, the object forms for the tools they name.
func TestApprovalRule(t *testing.T) {
	for _, c := range []struct {
		rule       string
		a, b, want bool
	}{
		{`null`, true, true, true},
		{`"always"`, true, true, true},
		{`"never"`, false, false, true},
		{`{"never":{"tool_names":["a"]}}`, false, true, true},
		{`{"always":{"tool_names":["a"]}}`, true, false, true},
		{`"sometimes"`, false, false, false},
	} {
		raw, _ := json.Marshal(map[string]any{"type": "mcp", "server_url": "litellm_proxy", "require_approval": json.RawMessage(c.rule)})
		m, e := readMCPTool(raw, 0, "http://gw")
		if (e == nil) != c.want {
			t.Errorf("%s: error %v", c.rule, e)
			continue
		}
		if e == nil && (m.approval.needs("a") != c.a || m.approval.needs("b") != c.b) {
			t.Errorf("%s: a %v b %v, want %v %v", c.rule, m.approval.needs("a"), m.approval.needs("b"), c.a, c.b)
		}
	}
}
