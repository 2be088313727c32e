package gateway

// Security suite, attack 4: a session opened from an internal address was a
// way in from outside. POSTs were refused, but GET /mcp/priv with the session
// id from an external address streamed the upstream's server-to-client
// requests, and a response POSTed to one reached the upstream. Now the IP
// class is checked on every message of a session: the session belongs to the
// class that opened it (ingress), a worker checks the class and key of every
// client answer before it goes upstream, and the ingress checks every message
// from a server against the stream's caller before it delivers it (the last
// two have unit tests in toolworkers and ingress: TestServerRequestAnswer
// CheckedForClassAndKey, TestGETStreamDelivers).

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

const (
	insideAddr  = "10.1.2.3"
	outsideAddr = "203.0.113.7"
)

// classGateway runs priv (internal-only) and pub (public) behind a trusted
// proxy (the loopback peer), so each request picks its class by
// X-Forwarded-For.
func classGateway(t *testing.T) *testGateway {
	t.Helper()
	pub, _ := upstream(t, "pub")
	priv, _ := upstream(t, "priv")
	return startGateway(t, fmt.Sprintf(`general_settings: {master_key: %s, mcp_internal_ip_ranges: ["10.0.0.0/8"], external_routes: [mcp, admin],
  use_x_forwarded_for: true, mcp_trusted_proxy_ranges: ["127.0.0.1/32"]}
mcp_servers:
  pub: {url: %q, available_on_public_internet: true}
  priv: {url: %q}
`, master, pub, priv), nil)
}

func from(h http.Header, addr string) http.Header {
	h = h.Clone()
	h.Set("X-Forwarded-For", addr)
	return h
}

func TestSecuritySessionIsBoundToItsIPClass(t *testing.T) {
	g := classGateway(t)
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "both-servers", "mcp_servers": []string{"pub", "priv"}})
	for _, caller := range []struct {
		name string
		h    http.Header
	}{{"master key", bearer(master)}, {"virtual key", bearer(key)}} {
		for _, path := range []string{"/mcp/priv", "/mcp", "/mcp/pub"} {
			what := caller.name + " on " + path
			inside := initSession(t, g.URL()+path, from(caller.h, insideAddr))
			outside := from(inside, outsideAddr)
			// Every kind of message of the session from outside is refused
			// as for an unknown session, whatever server it names.
			for _, body := range []string{
				rpc("tools/list", 2, ""),
				rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"x"}}`),
				`{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`,
				`{"jsonrpc":"2.0","id":"mcpbus-s2c.abc.1","result":{"roots":[]}}`,
			} {
				if r := post(t, g.URL()+path, outside, body); r.status != http.StatusNotFound || r.rpcErr.Code != -32001 {
					t.Errorf("%s: POST %.40s… from outside on an inside session: HTTP %d %s", what, body, r.status, r.body)
				}
			}
			if s, status := openSSE(t, g.URL()+path, outside); s != nil || status != http.StatusNotFound {
				t.Errorf("%s: GET from outside on an inside session: HTTP %d, want 404", what, status)
			}
			req, _ := http.NewRequest(http.MethodDelete, g.URL()+path, nil)
			req.Header = outside.Clone()
			if out, _ := exchange(t, req); out.status != http.StatusNotFound {
				t.Errorf("%s: DELETE from outside on an inside session: HTTP %d, want 404", what, out.status)
			}
			// The session is unharmed for its own side.
			if r := post(t, g.URL()+path, inside, rpc("tools/list", 4, "")); r.status != http.StatusOK || r.rpcErr.Code != 0 {
				t.Errorf("%s: the inside caller lost its session: HTTP %d %s", what, r.status, r.body)
			}
			if s, status := openSSE(t, g.URL()+path, inside); s == nil {
				t.Errorf("%s: GET from inside: HTTP %d", what, status)
			} else {
				s.Close()
			}
		}
		// A session opened outside is not carried inside either: a
		// session has one class.
		outside := initSession(t, g.URL()+"/mcp/pub", from(caller.h, outsideAddr))
		if r := post(t, g.URL()+"/mcp/pub", from(outside, insideAddr), rpc("tools/list", 5, "")); r.status != http.StatusNotFound {
			t.Errorf("%s: an outside session used from inside: HTTP %d", caller.name, r.status)
		}
	}
}

// The legacy transport: the stream is the session, opened inside; messages
// POSTed to it from outside are refused, so nothing they cause reaches the
// inside stream, and nothing of priv is answered to them.
func TestSecurityLegacySessionIsBoundToItsIPClass(t *testing.T) {
	g := classGateway(t)
	stream, sid := openLegacyStream(t, g.URL()+"/sse/priv", from(bearer(master), insideAddr))
	defer stream.Close()
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2024-11-05","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`,
		rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"x"}}`),
		`{"jsonrpc":"2.0","id":"mcpbus-s2c.abc.1","result":{"roots":[]}}`,
	} {
		r := postRaw(g.URL()+"/messages?session_id="+sid, from(bearer(master), outsideAddr), body)
		if r.status != http.StatusNotFound {
			t.Errorf("POST /messages %.40s… from outside on an inside legacy session: HTTP %d %s", body, r.status, r.body)
		}
	}
	r := postRaw(g.URL()+"/messages?session_id="+sid, from(bearer(master), insideAddr), rpc("tools/list", 3, ""))
	if r.status != http.StatusAccepted {
		t.Fatalf("POST /messages from inside: HTTP %d %s", r.status, r.body)
	}
	for {
		ev, ok := stream.next(10 * time.Second)
		if !ok {
			t.Fatal("no answer on the legacy stream")
		}
		if strings.Contains(ev.data, `"id":3`) {
			if !strings.Contains(ev.data, `"tools"`) {
				t.Fatalf("inside tools/list answer: %s", ev.data)
			}
			break
		}
	}
}
