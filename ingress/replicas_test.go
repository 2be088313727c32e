package ingress

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// With JetStream, a session made on one ingress process is served by
// another: POST, GET and DELETE on the second; the first ends its own GET
// stream when the second deletes the session, and both learn changes the
// other recorded.
func TestSessionAcrossIngressReplicas(t *testing.T) {
	ns := bustest.Server(t)
	cache := bustest.ServerCache(t, ns, bus.ServerSpec{Name: "github", Public: true}, bus.ServerSpec{Name: "gitlab", Public: true})
	h := newHarnessOn(t, ns, Options{}, nil)
	h.g.Close() // the harness's own ingress keeps sessions in memory; use two with the bucket
	a, urlA := h.startIngress(h.withJetStream(Options{Servers: cache}))
	b, urlB := h.startIngress(h.withJetStream(Options{Servers: cache}))

	s := initialize(t, urlA+"/mcp/github", userKey)
	sid := s.Get("Mcp-Session-Id")
	if resp, body := rpcPost(t, urlB+"/mcp/github", s, toolsCall); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"result"`) {
		t.Fatalf("tools/call on the second ingress: HTTP %d %s", resp.StatusCode, body)
	}
	call := h.received("tools/call")[0]
	if call.env.Session != sid || string(call.env.ClientCapabilities) != `{"sampling":{},"roots":{"listChanged":true}}` {
		t.Fatalf("the second ingress's envelope: %+v", call.env)
	}
	if resp, body := rpcPost(t, urlB+"/mcp/gitlab", s, toolsCall); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("the session on another server's endpoint of the second ingress: HTTP %d %s", resp.StatusCode, body)
	}
	// A subscription recorded through the first reaches the second.
	rpcPost(t, urlA+"/mcp/github", s, `{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"file:///z"}}`)
	bustest.Eventually(t, 30*time.Second, "the subscription reaches the second ingress", func() error {
		if c := b.sessions.cached(sid); c == nil || !c.subscribed("file:///z") {
			return fmt.Errorf("it holds %s", describeSession(c))
		}
		return nil
	})

	resp, ev := openGET(t, urlA+"/mcp/github", s)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET on the first: HTTP %d", resp.StatusCode)
	}
	_ = h.bus.PublishMsg(&nats.Msg{Subject: bus.ClientSubject(bus.SessionSubject(sid), "github"),
		Data: []byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"x"}}`)})
	ev.nextMessage(t, 10*time.Second)

	del := do(t, http.MethodDelete, urlB+"/mcp", s, "")
	del.Body.Close()
	if del.StatusCode != http.StatusOK {
		t.Fatalf("DELETE on the second: HTTP %d", del.StatusCode)
	}
	ev.ended(t, 10*time.Second)
	for _, url := range []string{urlA, urlB} {
		if resp, _ := rpcPost(t, url+"/mcp/github", s, toolsCall); resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s after DELETE: HTTP %d, want 404", url, resp.StatusCode)
		}
	}
	if a.sessions.cached(sid) != nil {
		t.Fatal("the first ingress still caches the deleted session")
	}
}
