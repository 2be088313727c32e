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

// bodyFraming is how a trickled body announces its length: a Content-Length
// of size bytes, or chunked (size 0).
type bodyFraming struct {
	name string
	size int
}

var framings = []bodyFraming{{"4 MiB", 4 << 20}, {"250 KB", 250000}, {"2 KB", 2000}, {"chunked", 0}}

// trickle opens a raw connection, sends a POST's headers announcing a 4 MiB
// body and only the first kilobyte of it, and returns the response the
// gateway sends while the rest never comes (ok false: none within wait, the
// gateway is still waiting for the body).
func trickle(t *testing.T, base, path string, header http.Header, wait time.Duration) (resp *http.Response, ok bool) {
	return trickleFramed(t, base, path, header, framings[0], wait)
}

// trickleFramed is trickle with the body announced as f says. Small bodies
// matter: net/http reads up to 256 KiB of an unread body before it answers.
func trickleFramed(t *testing.T, base, path string, header http.Header, f bodyFraming, wait time.Duration) (resp *http.Response, ok bool) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n",
		path, strings.TrimPrefix(base, "http://"))
	if f.size > 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", f.size)
	} else {
		b.WriteString("Transfer-Encoding: chunked\r\n")
	}
	for k, v := range header {
		fmt.Fprintf(&b, "%s: %s\r\n", k, v[0])
	}
	b.WriteString("\r\n")
	start := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"pad":"` + strings.Repeat("x", 1000)
	if f.size > 0 {
		b.WriteString(start)
	} else {
		fmt.Fprintf(&b, "%x\r\n%s\r\n", len(start), start)
	}
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
		for _, f := range framings {
			// The body never completes; the answer must not wait for it.
			resp, ok := trickleFramed(t, g.URL(), c.path, c.h, f, 20*time.Second)
			if !ok {
				t.Errorf("%s, %s body: no answer while the body was incomplete: the gateway waits for the body of a caller without a key", c.what, f.name)
				continue
			}
			if resp.StatusCode != http.StatusUnauthorized || !resp.Close {
				t.Errorf("%s, %s body: HTTP %d (closing: %v), want 401 and the connection closed", c.what, f.name, resp.StatusCode, resp.Close)
			}
		}
	}
}

func TestSecurityBodyMustArriveInTime(t *testing.T) {
	u, _ := upstream(t, "demo")
	g := startGatewayOpts(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q}\n", master, u), nil,
		func(o *Options) { o.BodyReadTimeout = 300 * time.Millisecond })
	for _, path := range []string{"/mcp", "/mcp/demo", "/mcp-rest/tools/call", "/key/generate"} {
		for _, f := range framings {
			resp, ok := trickleFramed(t, g.URL(), path, bearer(master), f, 20*time.Second)
			if !ok {
				t.Errorf("%s, %s body: a body that never completes was waited for without end", path, f.name)
				continue
			}
			if resp.StatusCode != http.StatusRequestTimeout {
				t.Errorf("%s, %s body: HTTP %d, want 408", path, f.name, resp.StatusCode)
			}
		}
	}
	assertServing(t, g, "trickled bodies")
}
