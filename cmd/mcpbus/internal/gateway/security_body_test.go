package gateway

// Security suite, attack 8: the body was read before the key was checked,
// with no read deadline, so key-less connections trickling 4 MB bodies held
// their memory and their connections (RSS 56 -> 596 MB for 100 of them). Now
// the key is checked from the headers first, and a body must arrive within
// the body read timeout.

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// trickle opens a raw connection, sends a POST's headers announcing a 4 MiB
// body and only the first kilobyte of it, and returns the response the
// gateway sends while the rest never comes (ok false: none within wait, the
// gateway is still waiting for the body).
func trickle(t *testing.T, base, path string, header http.Header, wait time.Duration) (resp *http.Response, ok bool) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %d\r\n",
		path, strings.TrimPrefix(base, "http://"), 4<<20)
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v[0])
	}
	b.WriteString("\r\n")
	b.WriteString(`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"pad":"` + strings.Repeat("x", 1000))
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	resp, err = http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return nil, false
	}
	resp.Body.Close()
	return resp, true
}

func TestSecurityKeyIsCheckedBeforeTheBody(t *testing.T) {
	u, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q}\n", master, u), nil)
	for _, c := range []struct {
		what, path string
		h          http.Header
	}{
		{"no key, /mcp", "/mcp", nil},
		{"no key, /mcp/demo", "/mcp/demo", nil},
		{"wrong key, /mcp", "/mcp", bearer("sk-not-a-key")},
		{"wrong x-litellm-api-key, /mcp", "/mcp", http.Header{"X-Litellm-Api-Key": {"sk-nope"}}},
		{"no key, /messages", "/messages?session_id=abc", nil},
		{"no key, /mcp-rest/tools/call", "/mcp-rest/tools/call", nil},
		{"no key, /key/generate", "/key/generate", nil},
		{"no key, POST /v1/mcp/server", "/v1/mcp/server", nil},
	} {
		// The body never completes; the answer must not wait for it.
		resp, ok := trickle(t, g.URL(), c.path, c.h, 20*time.Second)
		if !ok {
			t.Errorf("%s: no answer while the body was incomplete: the gateway waits for the body of a caller without a key", c.what)
			continue
		}
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: HTTP %d, want 401", c.what, resp.StatusCode)
		}
	}
}

func TestSecurityBodyMustArriveInTime(t *testing.T) {
	u, _ := upstream(t, "demo")
	g := startGatewayOpts(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q}\n", master, u), nil,
		func(o *Options) { o.BodyReadTimeout = 300 * time.Millisecond })
	for _, path := range []string{"/mcp", "/mcp/demo", "/mcp-rest/tools/call", "/key/generate"} {
		resp, ok := trickle(t, g.URL(), path, bearer(master), 20*time.Second)
		if !ok {
			t.Errorf("%s: a body that never completes was waited for without end", path)
			continue
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%s: HTTP %d, want 408", path, resp.StatusCode)
		}
	}
	assertServing(t, g, "trickled bodies")
}
