package gateway

// Security suite, attacks 1 and 2 (and their relatives): one request or one
// message that used to take a service off the bus for good. nats-server closes
// a connection whose protocol line exceeds 4 KiB, and nats.go does not
// reconnect a connection the server closed for a protocol error, so any
// caller value that reaches a subject unbounded is a permanent outage. Each
// test sends the attack and then proves the gateway still serves: readiness,
// a new session and a tool call, the admin API.

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// outageGateway is a gateway with a master key, a demo upstream and a virtual
// key permitted no server (the attacker needs nothing more).
func outageGateway(t *testing.T) (g *testGateway, nobody http.Header) {
	t.Helper()
	u, _ := upstream(t, "demo")
	g = startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q}\n  other: {url: %q}\n", master, u, u), nil)
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "nobody", "mcp_servers": []string{"nothing-here"}})
	return g, bearer(key)
}

// assertServing fails the test unless the gateway still does its job after an
// attack: ready, a new session on the aggregated endpoint (router), a call on
// one server (worker), and an admin request (auth and registry).
func assertServing(t *testing.T, g *testGateway, after string) {
	t.Helper()
	select {
	case err := <-g.Done():
		t.Fatalf("after %s: the gateway stopped: %v", after, err)
	default:
	}
	resp, err := http.Get(g.URL() + "/health/readiness")
	if err != nil {
		t.Fatalf("after %s: readiness: %v", after, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after %s: readiness HTTP %d", after, resp.StatusCode)
	}
	h := bearer(master)
	agg := initSession(t, g.URL()+"/mcp", h)
	if r := post(t, g.URL()+"/mcp", agg, rpc("tools/list", 2, "")); r.status != http.StatusOK || r.rpcErr.Code != 0 {
		t.Fatalf("after %s: aggregated tools/list: HTTP %d %s", after, r.status, r.body)
	}
	s := initSession(t, g.URL()+"/mcp/demo", h)
	if r := post(t, g.URL()+"/mcp/demo", s, rpc("tools/call", 3, `{"name":"echo","arguments":{"text":"still here"}}`)); !strings.Contains(string(r.body), "still here") {
		t.Fatalf("after %s: tools/call: HTTP %d %s", after, r.status, r.body)
	}
	if status, out := admin(t, g.URL(), http.MethodGet, "/v1/mcp/server/demo", nil); status != http.StatusOK {
		t.Fatalf("after %s: GET /v1/mcp/server/demo: HTTP %d %v", after, status, out)
	}
	if status, out := admin(t, g.URL(), http.MethodGet, "/key/list", nil); status != http.StatusOK {
		t.Fatalf("after %s: /key/list: HTTP %d %v", after, status, out)
	}
}

// badSessionIDs are session ids no gateway issues: too long for a subject
// token (the attack used 4,000+ bytes), or holding subject syntax.
var badSessionIDs = map[string]string{
	"129 bytes":     strings.Repeat("a", 129),
	"4,000 bytes":   strings.Repeat("a", 4000),
	"5,000 bytes":   strings.Repeat("0", 5000),
	"60,000 bytes":  strings.Repeat("f", 60000),
	"dot":           "abc.def",
	"wildcard *":    "*",
	"wildcard >":    ">",
	"space":         "abc def",
	"non-ASCII":     "séance",
	"dot, 5,000 b.": strings.Repeat("a.", 2500),
}

func TestSecuritySessionIDIsBoundedOnEveryRoute(t *testing.T) {
	g, nobody := outageGateway(t)
	for name, sid := range badSessionIDs {
		for _, caller := range []struct {
			name string
			h    http.Header
		}{{"master key", bearer(master)}, {"key permitted no server", nobody}} {
			what := fmt.Sprintf("session id %s, %s", name, caller.name)
			h := caller.h.Clone()
			h.Set("Mcp-Session-Id", sid)
			for _, method := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
				var body string
				if method == http.MethodPost {
					body = rpc("tools/list", 1, "")
				}
				req, _ := http.NewRequest(method, g.URL()+"/mcp/demo", strings.NewReader(body))
				req.Header = h.Clone()
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Set("Content-Type", "application/json")
				out, _ := exchange(t, req)
				if caller.name == "master key" && (out.status != http.StatusBadRequest || !strings.Contains(string(out.body), "not a session id this gateway issued")) {
					t.Errorf("%s %s: want 400 naming the session id, got HTTP %d %s", method, what, out.status, out.body)
				}
				if out.status < 400 {
					t.Errorf("%s %s: HTTP %d", method, what, out.status)
				}
			}
			r := postRaw(g.URL()+"/messages?session_id="+urlQueryEscape(sid), caller.h, rpc("ping", 1, ""))
			if r.status < 400 {
				t.Errorf("POST /messages %s: HTTP %d", what, r.status)
			}
		}
	}
	assertServing(t, g, "malformed session ids")
}

func urlQueryEscape(s string) string {
	r := strings.NewReplacer("%", "%25", " ", "%20", "&", "%26", "#", "%23", "+", "%2B")
	return r.Replace(s)
}

// A client response whose id names a server-to-client request of the
// gateway's form with a worker token too long to be one: the router used to
// publish it to a subject built from that token.
func TestSecurityClientResponseIDIsBounded(t *testing.T) {
	g, _ := outageGateway(t)
	h := initSession(t, g.URL()+"/mcp", bearer(master))
	for _, token := range []string{strings.Repeat("x", 129), strings.Repeat("x", 5000), strings.Repeat("x", 70000), "a.b.c", "*", ">"} {
		for _, n := range []string{"1", strings.Repeat("9", 21), strings.Repeat("1", 4000)} {
			id := fmt.Sprintf("mcpbus-s2c.%s.%s", token, n)
			for _, body := range []string{
				fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"result":{}}`, id),
				fmt.Sprintf(`{"jsonrpc":"2.0","id":%q,"error":{"code":-1,"message":"no"}}`, id),
			} {
				r := post(t, g.URL()+"/mcp", h, body)
				if r.status >= 500 {
					t.Fatalf("client response with id of %d bytes: HTTP %d %s", len(id), r.status, r.body)
				}
			}
		}
	}
	assertServing(t, g, "client responses with oversized server-to-client ids")
}

// A tool name becomes part of the usage subject the worker publishes to.
func TestSecurityToolNameIsBoundedInUsageSubjects(t *testing.T) {
	g, _ := outageGateway(t)
	h := bearer(master)
	names := []string{strings.Repeat("t", 5000), strings.Repeat("a.", 3000), strings.Repeat("é", 3000), "a b*c>d", strings.Repeat("demo__x", 1000)}
	call := func(path string) {
		s := initSession(t, g.URL()+path, h)
		for _, name := range names {
			body := fmt.Sprintf(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":%q,"arguments":{}}}`, name)
			if r := post(t, g.URL()+path, s, body); r.status >= 500 {
				t.Fatalf("tools/call of a %d-byte name on %s: HTTP %d %s", len(name), path, r.status, r.body)
			}
		}
	}
	call("/mcp/demo")
	// The worker publishes usage after it answers: wait for the event of
	// each call (each one on a subject made from the tool's name).
	usageEvents(t, g, len(names))
	call("/mcp")
	assertServing(t, g, "tool calls with oversized names")
}

// Names in REST paths and admin bodies become KV keys (subjects).
func TestSecurityAdminNamesAreBounded(t *testing.T) {
	g, _ := outageGateway(t)
	long := strings.Repeat("n", 5000)
	for _, c := range []struct {
		method, path string
		body         any
	}{
		{http.MethodGet, "/v1/mcp/server/" + long, nil},
		{http.MethodDelete, "/v1/mcp/server/" + long, nil},
		{http.MethodPut, "/v1/mcp/server", map[string]any{"server_id": long, "url": "http://127.0.0.1:1/mcp"}},
		{http.MethodPost, "/v1/mcp/server", map[string]any{"server_name": long, "url": "http://127.0.0.1:1/mcp"}},
		{http.MethodGet, "/team/info?team_id=" + long, nil},
		{http.MethodPost, "/team/new", map[string]any{"team_id": long}},
		{http.MethodPost, "/team/update", map[string]any{"team_id": long, "team_alias": "x"}},
		{http.MethodPost, "/team/delete", map[string]any{"team_ids": []string{long}}},
		{http.MethodGet, "/key/info?key=" + long, nil},
		{http.MethodPost, "/key/delete", map[string]any{"keys": []string{long}}},
		{http.MethodPost, "/key/generate", map[string]any{"team_id": long}},
		{http.MethodPost, "/key/generate", map[string]any{"mcp_servers": []string{long}}},
	} {
		status, out := admin(t, g.URL(), c.method, c.path, c.body)
		if status < 400 || status >= 500 {
			t.Errorf("%s %.40s…: want a 4xx naming the bad value, got HTTP %d %v", c.method, c.path, status, out)
		}
	}
	assertServing(t, g, "admin requests with oversized names")
}

// If the NATS server closes a service's connection anyway (a protocol error
// from a path not guarded above), the gateway must not go on half dead: it
// reports the loss on Done, and `serve` exits for a supervisor to restart it.
func TestSecurityClosedBusConnectionStopsTheGateway(t *testing.T) {
	g, _ := outageGateway(t)
	var ingress int
	for i, nc := range g.conns {
		if nc.Opts.Name == "mcpbus-ingress" {
			ingress = i
		}
	}
	// A subject over the server's control-line limit: nats-server answers
	// -ERR and closes the connection, which nats.go does not reconnect.
	_ = g.conns[ingress].Publish(strings.Repeat("x", 5000), nil)
	select {
	case err := <-g.Done():
		if !strings.Contains(err.Error(), "mcpbus-ingress") {
			t.Fatalf("Done: %v (want the connection named)", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the ingress's bus connection was closed by the server, and the gateway did not stop")
	}
}
