package ingress

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// GET with the wrong Accept, no session, an unknown or someone else's
// session, or a session of another server is refused with the status that
// names the problem; a second stream for one session is a conflict.
func TestGETStreamRefusals(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	s := initialize(t, h.url+"/mcp/github", userKey)
	master := http.Header{"Authorization": {"Bearer " + testMasterKey}, "Mcp-Session-Id": {s.Get("Mcp-Session-Id")}}
	for _, c := range []struct {
		name   string
		path   string
		header http.Header
		accept string
		status int
		code   string
		msg    string
	}{
		{"json accept", "/mcp/github", s, "application/json", 406, "MCPBUS_NOT_ACCEPTABLE", "text/event-stream"},
		{"no session", "/mcp/github", userKey, "text/event-stream", 400, "MCPBUS_BAD_REQUEST", "Mcp-Session-Id"},
		{"unknown session", "/mcp/github", http.Header{"Authorization": userKey["Authorization"], "Mcp-Session-Id": {"nope"}}, "text/event-stream", 404, "MCPBUS_SESSION_NOT_FOUND", "not found"},
		{"another key", "/mcp/github", master, "text/event-stream", 404, "MCPBUS_SESSION_NOT_FOUND", "not found"},
		{"another server", "/mcp/gitlab", s, "text/event-stream", 404, "MCPBUS_SESSION_NOT_FOUND", "another one"},
		{"no key", "/mcp/github", http.Header{"Mcp-Session-Id": s["Mcp-Session-Id"]}, "text/event-stream", 401, "MCPBUS_UNAUTHORIZED", "no key"},
	} {
		hd := c.header.Clone()
		hd.Set("Accept", c.accept)
		resp := do(t, http.MethodGet, h.url+c.path, hd, "")
		var body strings.Builder
		_, _ = bufioCopy(&body, resp)
		_, msg, code := rpcError(t, body.String())
		if resp.StatusCode != c.status || code != c.code || !strings.Contains(msg, c.msg) {
			t.Errorf("%s: HTTP %d %s %q, want %d %s with %q", c.name, resp.StatusCode, code, msg, c.status, c.code, c.msg)
		}
	}
	resp, ev := openGET(t, h.url+"/mcp/github", s)
	if resp.StatusCode != http.StatusOK || ev == nil {
		t.Fatalf("GET: HTTP %d", resp.StatusCode)
	}
	second, _ := openGET(t, h.url+"/mcp/github", s)
	var body strings.Builder
	_, _ = bufioCopy(&body, second)
	if _, msg, code := rpcError(t, body.String()); second.StatusCode != http.StatusConflict || code != "MCPBUS_CONFLICT" || !strings.Contains(msg, "already open") {
		t.Fatalf("second GET: HTTP %d %s", second.StatusCode, body.String())
	}
}

func bufioCopy(b *strings.Builder, resp *http.Response) (int64, error) {
	defer resp.Body.Close()
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := resp.Body.Read(buf)
		b.Write(buf[:k])
		n += int64(k)
		if err != nil {
			return n, nil
		}
	}
}

// The GET stream delivers what workers send to the session (acknowledging
// requests once written), keeps alive with comments, accepts Last-Event-ID,
// and ends when the session is deleted (which is announced to workers).
func TestGETStreamDelivers(t *testing.T) {
	ns := bustest.Server(t)
	cache := bustest.ServerCache(t, ns, bus.ServerSpec{Name: "github", Public: true}, bus.ServerSpec{Name: "internal-db"})
	h := newHarnessOn(t, ns, Options{Servers: cache, Keepalive: 50 * time.Millisecond}, nil)
	s := initialize(t, h.url+"/mcp", userKey)
	sid := s.Get("Mcp-Session-Id")
	closed, err := h.bus.SubscribeSync(bus.SubjectSessionClosed)
	if err != nil {
		t.Fatal(err)
	}
	hd := s.Clone()
	hd.Set("Last-Event-ID", "whatever-1")
	resp, ev := openGET(t, h.url+"/mcp", hd)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET: HTTP %d %v", resp.StatusCode, resp.Header)
	}
	if e := ev.next(t, 10*time.Second); e.id == "" || e.retry == "" || e.data != "" {
		t.Fatalf("first event %+v, want the priming event", e)
	}
	// Messages from a server the stream's (external) caller cannot see, or
	// from the gateway without the caller's envelope, are not delivered; a
	// request among them is refused at once with the reason.
	from := func(server string) string { return bus.ClientSubject(bus.SessionSubject(sid), server) }
	for _, server := range []string{"internal-db", bus.GatewayToken, "no-such-server"} {
		_ = h.bus.PublishMsg(&nats.Msg{Subject: from(server),
			Data: []byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hidden"}}`)})
		reply, err := h.bus.RequestMsg(&nats.Msg{Subject: from(server),
			Data: []byte(`{"jsonrpc":"2.0","id":"mcpbus-s2c.w.9","method":"roots/list"}`)}, 10*time.Second)
		if e := bus.ReplyError(reply); err != nil || e == nil || e.Kind != bus.ErrNotPermitted {
			t.Fatalf("a request from %q on the stream of a caller who may not see it: %v %v, want NOT_PERMITTED", server, err, e)
		}
	}
	_ = h.bus.PublishMsg(&nats.Msg{Subject: from("github"),
		Data: []byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"hi"}}`)})
	if e := ev.nextMessage(t, 10*time.Second); !strings.Contains(e.data, `"data":"hi"`) || e.id == "" {
		t.Fatalf("event %+v (the hidden server's messages must not come first)", e)
	}
	reply, err := h.bus.RequestMsg(&nats.Msg{Subject: from("github"),
		Data: []byte(`{"jsonrpc":"2.0","id":"mcpbus-s2c.w.1","method":"roots/list"}`)}, 10*time.Second)
	if err != nil || bus.ReplyError(reply) != nil {
		t.Fatalf("a server-to-client request on the GET stream was not acknowledged: %v %v", err, bus.ReplyError(reply))
	}
	if e := ev.nextMessage(t, 10*time.Second); !strings.Contains(e.data, `"roots/list"`) {
		t.Fatalf("event %+v", e)
	}
	keepalive := false
	for deadline := time.Now().Add(10 * time.Second); !keepalive && time.Now().Before(deadline); {
		keepalive = ev.next(t, 10*time.Second).comment == "keepalive"
	}
	if !keepalive {
		t.Fatal("no keepalive comment on an idle stream")
	}

	del := do(t, http.MethodDelete, h.url+"/mcp", s, "")
	del.Body.Close()
	if del.StatusCode != http.StatusOK {
		t.Fatalf("DELETE: HTTP %d", del.StatusCode)
	}
	ev.ended(t, 10*time.Second)
	m, err := closed.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != sid {
		t.Fatalf("session end announced as %v %v, want %s", m, err, sid)
	}
}

// list_changed reaches the streams of sessions that use the server: those
// that selected it, and aggregated ones whose caller may see (public, or an
// internal caller) and use (key permissions) it. resources/updated reaches
// only sessions subscribed to the URI.
func TestNotificationsFanOut(t *testing.T) {
	ns := bustest.Server(t)
	cache := bustest.ServerCache(t, ns,
		bus.ServerSpec{Name: "github", Public: true},
		bus.ServerSpec{Name: "gitlab", Public: true},
		bus.ServerSpec{Name: "internal-db"})
	h := newHarnessOn(t, ns, Options{Servers: cache}, nil)
	// A second ingress where the loopback client is internal.
	_, internalURL := h.startIngress(Options{Servers: cache, InternalRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	master := http.Header{"Authorization": {"Bearer " + testMasterKey}}

	type stream struct {
		name string
		sid  string
		ev   *events
		want []string
	}
	open := func(name, url string, key http.Header, want ...string) *stream {
		s := initialize(t, url, key)
		resp, ev := openGET(t, url, s)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: GET HTTP %d", name, resp.StatusCode)
		}
		if name == "master, aggregated, external" {
			rpcPost(t, url, s, `{"jsonrpc":"2.0","id":9,"method":"resources/subscribe","params":{"uri":"file:///x"}}`)
		}
		return &stream{name, s.Get("Mcp-Session-Id"), ev, want}
	}
	streams := []*stream{
		open("user, github only", h.url+"/mcp/github", userKey, "tools@github", "prompts@github"),
		open("master, aggregated, external", h.url+"/mcp", master, "tools@github", "tools@gitlab", "prompts@github", "updated@github"),
		open("user, aggregated, external", h.url+"/mcp", userKey, "tools@github", "prompts@github"),
		open("master, aggregated, internal", internalURL+"/mcp", master, "tools@github", "tools@gitlab", "tools@internal-db", "prompts@github"),
	}
	for _, n := range []struct{ server, body string }{
		{"github", `{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"tag":"tools@github"}}`},
		{"gitlab", `{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"tag":"tools@gitlab"}}`},
		{"internal-db", `{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"tag":"tools@internal-db"}}`},
		{"github", `{"jsonrpc":"2.0","method":"notifications/prompts/list_changed","params":{"tag":"prompts@github"}}`},
		{"github", `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///x","tag":"updated@github"}}`},
		{"github", `{"jsonrpc":"2.0","method":"notifications/resources/updated","params":{"uri":"file:///y","tag":"updated-y@github"}}`},
		{"github", `{"jsonrpc":"2.0","method":"notifications/message","params":{"tag":"not-for-clients"}}`},
	} {
		if err := h.bus.Publish(bus.NotifySubject(n.server), []byte(n.body)); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range streams {
		var got []string
		for range st.want {
			e := st.ev.nextMessage(t, 10*time.Second)
			var m struct {
				Params struct {
					Tag string `json:"tag"`
				} `json:"params"`
			}
			_ = json.Unmarshal([]byte(e.data), &m)
			got = append(got, m.Params.Tag)
		}
		if strings.Join(got, " ") != strings.Join(st.want, " ") {
			t.Errorf("%s received %v, want %v", st.name, got, st.want)
		}
		st.ev.none(t, 150*time.Millisecond)
	}
}
