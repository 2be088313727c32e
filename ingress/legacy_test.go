package ingress

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// The legacy HTTP+SSE transport: the stream opens with the endpoint event,
// POSTs to it get 202, answers and related messages come as message events,
// initialize sets the session's version, and closing the stream ends the
// session (announced to workers).
func TestLegacySSERoundTrip(t *testing.T) {
	ns := bustest.Server(t)
	cache := bustest.ServerCache(t, ns, bus.ServerSpec{Name: "github", Public: true})
	h := newHarnessOn(t, ns, Options{Servers: cache}, func(h *harness, rq routed) {
		go func() {
			// As a worker relays it: naming its server.
			_ = h.bus.PublishMsg(&nats.Msg{Subject: bus.ClientSubject(rq.env.Stream, "github"),
				Data: []byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1}}`)})
			rq.respond(`{"content":[]}`)
		}()
	})
	closed, _ := h.bus.SubscribeSync(bus.SubjectSessionClosed)
	resp, ev := openGET(t, h.url+"/sse/github", userKey)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET /sse/github: HTTP %d", resp.StatusCode)
	}
	endpoint := ev.next(t, 10*time.Second)
	if endpoint.event != "endpoint" || !strings.HasPrefix(endpoint.data, "/messages?session_id=") {
		t.Fatalf("first event %+v, want the endpoint event", endpoint)
	}
	sid := strings.TrimPrefix(endpoint.data, "/messages?session_id=")
	if sess := h.g.sessions.cached(sid); sess == nil || sess.rec.Version != "2024-11-05" || strings.Join(sess.rec.Servers, ",") != "github" {
		t.Fatalf("session at GET: %+v", sess)
	}
	post := func(body string) (int, string) {
		r, b := rpcPost(t, h.url+endpoint.data, userKey, body)
		return r.StatusCode, b
	}
	if st, b := post(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{"sampling":{}},"clientInfo":{"name":"old","version":"1"}}}`); st != http.StatusAccepted || b != "" {
		t.Fatalf("initialize: HTTP %d %q, want 202 and no body", st, b)
	}
	if e := ev.nextMessage(t, 10*time.Second); e.event != "message" || !strings.Contains(e.data, `"protocolVersion":"2025-03-26"`) {
		t.Fatalf("initialize answer %+v", e)
	}
	if sess := h.g.sessions.cached(sid); sess.rec.Version != "2025-03-26" || string(sess.rec.Capabilities) != `{"sampling":{}}` {
		t.Fatalf("session after initialize: %+v", sess.rec)
	}
	if st, _ := post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`); st != http.StatusAccepted {
		t.Fatalf("notification: HTTP %d", st)
	}
	if st, _ := post(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}`); st != http.StatusAccepted {
		t.Fatalf("tools/call: HTTP %d", st)
	}
	if e := ev.nextMessage(t, 10*time.Second); !strings.Contains(e.data, `"notifications/progress"`) {
		t.Fatalf("progress %+v", e)
	}
	if e := ev.nextMessage(t, 10*time.Second); !strings.Contains(e.data, `"id":2,"result"`) {
		t.Fatalf("tools/call answer %+v", e)
	}
	call := h.received("tools/call")[0]
	if call.env.Session != sid || call.env.ProtocolVersion != "2025-03-26" || strings.Join(call.env.Servers, ",") != "github" ||
		call.env.Stream != bus.SessionSubject(sid) || string(call.env.ClientCapabilities) != `{"sampling":{}}` {
		t.Fatalf("envelope %+v", call.env)
	}
	if n := len(h.received("notifications/initialized")); n != 1 {
		t.Fatalf("router got %d notifications/initialized", n)
	}

	// Refusals name the problem.
	for _, c := range []struct {
		url    string
		header http.Header
		status int
		code   string
	}{
		{h.url + "/messages", userKey, 400, "MCPBUS_BAD_REQUEST"},
		{h.url + "/messages?session_id=nope", userKey, 404, "MCPBUS_SESSION_NOT_FOUND"},
		{h.url + endpoint.data, http.Header{"Authorization": {"Bearer " + testMasterKey}}, 404, "MCPBUS_SESSION_NOT_FOUND"},
		{h.url + endpoint.data, nil, 401, "MCPBUS_UNAUTHORIZED"},
	} {
		r, b := rpcPost(t, c.url, c.header, `{"jsonrpc":"2.0","id":3,"method":"ping"}`)
		if _, _, code := rpcError(t, b); r.StatusCode != c.status || code != c.code {
			t.Errorf("%s: HTTP %d %s, want %d %s", c.url, r.StatusCode, b, c.status, c.code)
		}
	}

	// Closing the stream ends the session.
	resp.Body.Close()
	m, err := closed.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != sid {
		t.Fatalf("end of the legacy session announced as %v %v", m, err)
	}
	if r, _ := rpcPost(t, h.url+endpoint.data, userKey, `{"jsonrpc":"2.0","id":4,"method":"ping"}`); r.StatusCode != http.StatusNotFound {
		t.Fatalf("POST after the stream closed: HTTP %d, want 404", r.StatusCode)
	}
}
