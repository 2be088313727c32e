package ingress

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// The DNS rebinding defence, case by case: which Host and Origin each
// listening setup accepts, and what a refusal says.
func TestOriginPolicy(t *testing.T) {
	list := []string{"https://app.example.com", "gw.example.com", "http://tool.example.com:8080", "[::1]:9000"}
	cases := []struct {
		name, listen string
		allowed      []string
		host, origin string
		refused      string // "" accepted; else what the 403 must name
	}{
		// Loopback: localhost names only, any port.
		{"loopback localhost", "127.0.0.1:4000", nil, "localhost:4000", "", ""},
		{"loopback 127.0.0.1", "127.0.0.1:4000", nil, "127.0.0.1:4000", "http://127.0.0.1:4000", ""},
		{"loopback [::1]", "[::1]:4000", nil, "[::1]:4000", "http://[::1]:3000", ""},
		{"loopback localhost origin, other port", "localhost:4000", nil, "localhost:4000", "http://localhost:5173", ""},
		{"loopback evil host", "127.0.0.1:4000", nil, "evil.example.com", "", `Host "evil.example.com"`},
		{"loopback evil both", "127.0.0.1:4000", nil, "evil.example.com", "http://evil.example.com", `Host "evil.example.com"`},
		{"loopback evil origin", "127.0.0.1:4000", nil, "localhost:4000", "http://evil.example.com", `Origin "http://evil.example.com"`},
		{"loopback null origin", "127.0.0.1:4000", nil, "localhost:4000", "null", `Origin "null"`},
		{"loopback listed host", "127.0.0.1:4000", list, "gw.example.com", "", ""},
		// An allow-list on a public address: only what it lists.
		{"listed origin with scheme", "0.0.0.0:4000", list, "gw.example.com", "https://app.example.com", ""},
		{"listed origin, wrong scheme", "0.0.0.0:4000", list, "gw.example.com", "http://app.example.com", `Origin "http://app.example.com"`},
		{"bare entry, any scheme and port", "0.0.0.0:4000", list, "GW.example.com:443", "http://gw.example.com:8443", ""},
		{"listed port", "0.0.0.0:4000", list, "gw.example.com", "http://tool.example.com:8080", ""},
		{"wrong port", "0.0.0.0:4000", list, "gw.example.com", "http://tool.example.com:9090", `Origin "http://tool.example.com:9090"`},
		{"ipv6 entry", "0.0.0.0:4000", list, "[::1]:9000", "", ""},
		{"unlisted host", "0.0.0.0:4000", list, "other.example.com", "", `Host "other.example.com"`},
		{"localhost not ours off loopback", "10.0.0.5:4000", list, "localhost:4000", "", `Host "localhost:4000"`},
		// No allow-list on a public address: any Host, same-origin Origin.
		{"open any host", ":4000", nil, "whatever.example.net", "", ""},
		{"open same origin", ":4000", nil, "whatever.example.net:4000", "https://whatever.example.net", ""},
		{"open cross origin", ":4000", nil, "whatever.example.net", "https://evil.example.com", `Origin "https://evil.example.com"`},
		{"open malformed origin", "", nil, "x", "not a url", `Origin "not a url"`},
	}
	for _, c := range cases {
		p := newOriginPolicy(c.listen, c.allowed)
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		r.Host = c.host
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		e := p.check(r)
		switch {
		case c.refused == "" && e != nil:
			t.Errorf("%s: refused: %s", c.name, e.Message)
		case c.refused != "" && e == nil:
			t.Errorf("%s: accepted, want a refusal naming %s", c.name, c.refused)
		case e != nil && (e.Kind != bus.ErrForbidden || !strings.Contains(e.Message, c.refused) || !strings.Contains(e.Message, "mcp_allowed_origins")):
			t.Errorf("%s: %s %q, want 403 naming %s and the setting", c.name, e.Kind.Code, e.Message, c.refused)
		}
	}
}

// Every MCP endpoint (POST, GET, DELETE on /mcp, and the legacy ones)
// answers a foreign Origin with 403 and a JSON-RPC error body, before
// anything else; localhost passes.
func TestOriginCheckedOnEveryMCPEndpoint(t *testing.T) {
	h := newHarness(t, Options{ListenAddr: "127.0.0.1:0"}, nil)
	evil := http.Header{"Origin": {"http://evil.example.com"}, "Accept": {"application/json, text/event-stream"}}
	for _, c := range []struct{ method, path, body string }{
		{http.MethodPost, "/mcp", testInit},
		{http.MethodPost, "/mcp/github", testInit},
		{http.MethodGet, "/mcp", ""},
		{http.MethodDelete, "/mcp", ""},
		{http.MethodGet, "/sse", ""},
		{http.MethodPost, "/messages?session_id=x", testInit},
	} {
		resp := do(t, c.method, h.url+c.path, evil, c.body)
		var b strings.Builder
		_, _ = bufioCopy(&b, resp)
		code, msg, kind := rpcError(t, b.String())
		if resp.StatusCode != http.StatusForbidden || kind != "MCPBUS_FORBIDDEN" || code != bus.ErrForbidden.RPC || !strings.Contains(msg, "evil.example.com") {
			t.Errorf("%s %s: HTTP %d %s", c.method, c.path, resp.StatusCode, b.String())
		}
	}
	ok := userKey.Clone()
	ok.Set("Origin", "http://localhost:6274")
	if resp, body := rpcPost(t, h.url+"/mcp", ok, testInit); resp.StatusCode != http.StatusOK {
		t.Fatalf("localhost origin: HTTP %d %s", resp.StatusCode, body)
	}
	// The Host check: the conformance suite's rebinding probe.
	req, _ := http.NewRequest(http.MethodPost, h.url+"/mcp", strings.NewReader(testInit))
	req.Host = "evil.example.com"
	req.Header = http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("Host evil.example.com: HTTP %d, want 403", resp.StatusCode)
	}
}
