package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The minimal upstream is MCP enough for the load generator: a session
// opens, echo answers its text, a wrong credential is refused, an unknown
// method (2026-07-28's server/discover) is -32601 so a client falls back.
func TestMinimalUpstream(t *testing.T) {
	srv := httptest.NewServer(minimalHandler("Bearer t0k"))
	defer srv.Close()
	ctx := context.Background()
	tg := newTarget("direct", srv.URL+"/mcp", http.Header{"Authorization": {"Bearer t0k"}})
	s, err := tg.initialize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.call(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for body, want := range map[string]string{
		`{"jsonrpc":"2.0","id":"d","method":"server/discover","params":{}}`:                                   `"id":"d","error":{"code":-32601`,
		`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`:                                                      `"name":"echo"`,
		`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"x","arguments":{}}}`:                 `"code":-32602`,
		`{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo","arguments":{"text":"a\"b"}}}`: `"text":"a\"b"`,
	} {
		resp, err := http.Post(srv.URL+"/mcp", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without the credential: HTTP %d", body, resp.StatusCode)
		}
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t0k")
		req.Header.Set("Content-Type", "application/json")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 4096)
		n, _ := io.ReadFull(resp.Body, b)
		resp.Body.Close()
		if got := string(b[:n]); resp.StatusCode != http.StatusOK || !strings.Contains(got, want) {
			t.Errorf("%s: HTTP %d %s, want %s", body, resp.StatusCode, got, want)
		}
	}
}
