package conformance

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEraRule(t *testing.T) {
	const modernMeta = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`
	cases := []struct {
		name, method, header, session, body string
		modern                              bool
	}{
		{"initialize", "POST", "", "", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25"}}`, false},
		{"legacy header", "POST", "2025-11-25", "s1", `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, false},
		{"modern header", "POST", "2026-07-28", "", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{}}`, true},
		{"modern header, session id ignored", "POST", "2026-07-28", "s1", `{}`, true},
		{"unknown later version", "POST", "v999.0.0", "", `{}`, true},
		{"modern _meta, no header", "POST", "", "", modernMeta, true},
		{"modern _meta, legacy header", "POST", "2025-11-25", "", modernMeta, true},
		{"legacy _meta", "POST", "", "", strings.Replace(modernMeta, "2026-07-28", "2025-11-25", 1), false},
		{"_meta version not a string", "POST", "", "", strings.Replace(modernMeta, `"2026-07-28"`, `20260728`, 1), false},
		{"notification with modern _meta", "POST", "", "", strings.Replace(modernMeta, `"id":1,`, "", 1), false},
		{"batch", "POST", "", "", "[" + modernMeta + "]", false},
		{"not JSON", "POST", "", "", `{`, false},
		{"too large to peek", "POST", "", "", modernMeta + strings.Repeat(" ", maxPeek), false},
		{"GET, legacy session", "GET", "2025-11-25", "s1", "", false},
		{"GET, modern, no session", "GET", "2026-07-28", "", "", true},
		{"GET, modern header on a legacy session", "GET", "2026-07-28", "s1", "", false},
		{"DELETE, legacy session", "DELETE", "2025-11-25", "s1", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, "/mcp", strings.NewReader(c.body))
			if c.header != "" {
				r.Header.Set("MCP-Protocol-Version", c.header)
			}
			if c.session != "" {
				r.Header.Set("Mcp-Session-Id", c.session)
			}
			if got := isModern(r); got != c.modern {
				t.Errorf("isModern = %v, want %v", got, c.modern)
			}
			// The handler gets the body whole, whatever was peeked.
			got, err := io.ReadAll(r.Body)
			if err != nil || string(got) != c.body {
				t.Errorf("body after the era rule: %d bytes (err %v), want the %d sent", len(got), err, len(c.body))
			}
		})
	}
}

// A 2026-07-28 GET (no session) is the stateless handler's 405; a GET
// without a session in the legacy era is still the stateful handler's.
func TestModernGETIs405(t *testing.T) {
	_, url := serve(t)
	get := func(version string) *http.Response {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept", "text/event-stream")
		req.Header.Set("MCP-Protocol-Version", version)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := get("2026-07-28"); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "POST" {
		t.Errorf("modern GET: %d, Allow %q; want 405, Allow POST", res.StatusCode, res.Header.Get("Allow"))
	}
	if res := get(legacyVersion); res.StatusCode == http.StatusMethodNotAllowed {
		t.Errorf("legacy GET without a session: 405, want the stateful handler's answer")
	}
}

// A legacy initialize still opens a session (the stateful handler), while a
// modern request never gets one.
func TestOnlyTheLegacyEraHasSessions(t *testing.T) {
	_, url := serve(t)
	post := func(version, body string) *http.Response {
		req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		if version != "" {
			req.Header.Set("MCP-Protocol-Version", version)
		}
		req.Header.Set("Mcp-Method", "server/discover")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}
	res := post("", `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`)
	if res.StatusCode != http.StatusOK || res.Header.Get("Mcp-Session-Id") == "" {
		t.Errorf("initialize: %d, session %q; want 200 and a session", res.StatusCode, res.Header.Get("Mcp-Session-Id"))
	}
	res = post(modernVersion, `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}`)
	if res.StatusCode != http.StatusOK || res.Header.Get("Mcp-Session-Id") != "" {
		t.Errorf("server/discover: %d, session %q; want 200 and none", res.StatusCode, res.Header.Get("Mcp-Session-Id"))
	}
}
