package ingress

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

const toolsCall = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"slow"}}`

// A related message that comes before the router's answer switches the
// answer to SSE: the stream carries a priming event, the messages (a
// server-to-client request acknowledged once written), then the response,
// each event with an id, and ends.
func TestAnswerSwitchesToSSEWhenAStreamMessageComesFirst(t *testing.T) {
	acked := make(chan error, 1)
	h := githubHarness(t, func(h *harness, rq routed) {
		go func() {
			_ = h.bus.Publish(bus.ClientSubject(rq.env.Stream, "github"), []byte(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}`))
			_, err := h.bus.Request(bus.ClientSubject(rq.env.Stream, "github"), []byte(`{"jsonrpc":"2.0","id":"mcpbus-s2c.w1.1","method":"sampling/createMessage","params":{}}`), 10*time.Second)
			acked <- err
			rq.respond(`{"content":[{"type":"text","text":"done"}]}`)
		}()
	})
	s := initialize(t, h.url+"/mcp", userKey)
	resp, body := rpcPost(t, h.url+"/mcp", s, toolsCall)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" || resp.Header.Get("X-Accel-Buffering") != "no" {
		t.Fatalf("HTTP %d, headers %v", resp.StatusCode, resp.Header)
	}
	if err := <-acked; err != nil {
		t.Fatalf("the server-to-client request was not acknowledged: %v", err)
	}
	ev := readEvents(&http.Response{Body: nopCloser{strings.NewReader(body)}})
	prime := ev.next(t, time.Second)
	if prime.id == "" || prime.retry != "1000" || prime.data != "" {
		t.Fatalf("first event %+v, want a priming event (id, retry, empty data) for a 2025-11-25 session", prime)
	}
	ids := map[string]bool{prime.id: true}
	for _, want := range []string{`"notifications/progress"`, `"sampling/createMessage"`, `"id":7,"result":{"content"`} {
		e := ev.next(t, time.Second)
		if !strings.Contains(e.data, want) || e.event != "message" || e.id == "" || ids[e.id] {
			t.Fatalf("event %+v, want a message with %s and a fresh id", e, want)
		}
		ids[e.id] = true
	}
	ev.ended(t, time.Second)
}

type nopCloser struct{ *strings.Reader }

func (nopCloser) Close() error { return nil }

// When the router answers first, the answer is plain JSON (the hot path).
// The request names a stream subject only when the client accepts SSE.
func TestAnswerIsJSONWhenTheReplyComesFirst(t *testing.T) {
	h := newHarness(t, Options{}, func(h *harness, rq routed) { rq.respond(`{"ok":true}`) })
	s := initialize(t, h.url+"/mcp", userKey)
	resp, body := rpcPost(t, h.url+"/mcp", s, toolsCall)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || body != `{"jsonrpc":"2.0","id":7,"result":{"ok":true}}` {
		t.Fatalf("HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	onlyJSON := s.Clone()
	onlyJSON.Set("Accept", "application/json")
	if resp, body := rpcPost(t, h.url+"/mcp", onlyJSON, toolsCall); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok":true`) {
		t.Fatalf("JSON-only client: HTTP %d %s", resp.StatusCode, body)
	}
	calls := h.received("tools/call")
	if len(calls) != 2 {
		t.Fatalf("router got %d calls", len(calls))
	}
	if !strings.HasPrefix(calls[0].env.Stream, bus.StreamSubject(h.g.hub.id, "")) {
		t.Errorf("stream subject %q, want one under this ingress's prefix", calls[0].env.Stream)
	}
	if calls[1].env.Stream != "" {
		t.Errorf("a client that accepts only JSON got a stream subject %q", calls[1].env.Stream)
	}
	if init := h.received("initialize"); init[0].env.Stream != "" {
		t.Errorf("initialize got a stream subject: its answer must be plain for the session header")
	}
}

// Concurrent POSTs of one process share one subscription: each gets its own
// messages and answer, never another's.
func TestConcurrentStreamsStayApart(t *testing.T) {
	h := githubHarness(t, func(h *harness, rq routed) {
		var p struct {
			Name string `json:"name"`
		}
		_ = json.Unmarshal(rq.msg.Params, &p)
		go func() {
			for i := 0; i < 3; i++ {
				_ = h.bus.Publish(bus.ClientSubject(rq.env.Stream, "github"), []byte(fmt.Sprintf(`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"%s-%d"}}`, p.Name, i)))
			}
			rq.respond(`{"name":"` + p.Name + `"}`)
		}()
	})
	s := initialize(t, h.url+"/mcp", userKey)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("c%d", i)
			_, body := rpcPost(t, h.url+"/mcp", s, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":%q}}`, i, name))
			for j := 0; j < 3; j++ {
				if !strings.Contains(body, fmt.Sprintf(`"%s-%d"`, name, j)) {
					t.Errorf("%s: message %d missing: %s", name, j, body)
				}
			}
			if strings.Count(body, `"data":"`) != 3 || !strings.Contains(body, `"result":{"name":"`+name+`"}`) {
				t.Errorf("%s got another stream's messages or answer: %s", name, body)
			}
		}()
	}
	wg.Wait()
}

// A message for a POST that has been answered is dropped: a server-to-client
// request then gets no acknowledgement, so its worker tells the upstream.
func TestNoAckAfterTheAnswer(t *testing.T) {
	streams := make(chan string, 1)
	h := githubHarness(t, func(h *harness, rq routed) {
		streams <- rq.env.Stream
		rq.respond(`{}`)
	})
	s := initialize(t, h.url+"/mcp", userKey)
	if resp, _ := rpcPost(t, h.url+"/mcp", s, toolsCall); resp.StatusCode != http.StatusOK {
		t.Fatal(resp.Status)
	}
	_, err := h.bus.Request(bus.ClientSubject(<-streams, "github"), []byte(`{"jsonrpc":"2.0","id":"mcpbus-s2c.w.2","method":"roots/list"}`), 300*time.Millisecond)
	if !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("a request after the answer: %v, want no acknowledgement (timeout)", err)
	}
}

// The session's client capabilities and log level travel with every request
// of the session; resources/subscribe and unsubscribe are recorded.
func TestSessionStateInTheEnvelope(t *testing.T) {
	h := newHarness(t, Options{}, nil)
	s := initialize(t, h.url+"/mcp", userKey)
	if init := h.received("initialize"); string(init[0].env.ClientCapabilities) != `{"sampling":{},"roots":{"listChanged":true}}` {
		t.Fatalf("initialize's envelope capabilities %s", init[0].env.ClientCapabilities)
	}
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":2,"method":"logging/setLevel","params":{"level":"warning"}}`,
		`{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"file:///a"}}`,
		`{"jsonrpc":"2.0","id":4,"method":"resources/subscribe","params":{"uri":"file:///b"}}`,
		`{"jsonrpc":"2.0","id":5,"method":"resources/unsubscribe","params":{"uri":"file:///a"}}`,
		toolsCall,
	} {
		if resp, body := rpcPost(t, h.url+"/mcp", s, m); resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: HTTP %d %s", m, resp.StatusCode, body)
		}
	}
	call := h.received("tools/call")[0]
	if string(call.env.ClientCapabilities) != `{"sampling":{},"roots":{"listChanged":true}}` || call.env.LogLevel != "warning" {
		t.Fatalf("envelope capabilities %s, level %q", call.env.ClientCapabilities, call.env.LogLevel)
	}
	sess := h.g.sessions.cached(s.Get("Mcp-Session-Id"))
	if !sess.subscribed("file:///b") || sess.subscribed("file:///a") {
		t.Fatalf("subscriptions %v, want [file:///b]", sess.rec.Subscriptions)
	}
}

// A failed subscribe is not recorded.
func TestFailedSubscribeNotRecorded(t *testing.T) {
	h := newHarness(t, Options{}, func(h *harness, rq routed) {
		_ = rq.reply.Respond(bus.ErrorResponse(rq.msg.ID, bus.Errorf(bus.ErrInvalidParams, "unknown resource")))
	})
	s := initialize(t, h.url+"/mcp", userKey)
	rpcPost(t, h.url+"/mcp", s, `{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"file:///nope"}}`)
	if sess := h.g.sessions.cached(s.Get("Mcp-Session-Id")); len(sess.rec.Subscriptions) != 0 {
		t.Fatalf("a refused subscribe was recorded: %v", sess.rec.Subscriptions)
	}
}

// With no router on the bus the answer is at once a 503 naming it. "At
// once": the ingress knows from NATS's no-responders answer, which is what
// "router is not running" reports; waiting for an answer would end in a
// timeout error after the ingress's 10 min bound instead.
func TestNoRouter(t *testing.T) {
	ns := bustest.Server(t)
	fakeVerify(t, bustest.Conn(t, ns))
	h := &harness{t: t, ns: ns}
	_, url := h.startIngress(Options{})
	resp, body := rpcPost(t, url+"/mcp", userKey, testInit)
	_, msg, code := rpcError(t, body)
	if resp.StatusCode != http.StatusServiceUnavailable || code != "MCPBUS_SERVICE_UNAVAILABLE" || !strings.Contains(msg, "router is not running") {
		t.Fatalf("HTTP %d %s", resp.StatusCode, body)
	}
}

// githubHarness is a harness whose registry has the public server github,
// which the user key may use: the worker of the tests' messages.
func githubHarness(t *testing.T, route func(h *harness, rq routed)) *harness {
	ns := bustest.Server(t)
	cache := bustest.ServerCache(t, ns, bus.ServerSpec{Name: "github", Public: true},
		bus.ServerSpec{Name: "gitlab", Public: true}, bus.ServerSpec{Name: "internal-db"})
	return newHarnessOn(t, ns, Options{Servers: cache}, route)
}

// A POST's stream carries only what its caller may see: a message sent as a
// server the caller may not use (or see) is not relayed, and a request among
// them is refused at once with the reason, so its worker tells the upstream.
func TestPostStreamRelaysOnlyTheCallersServers(t *testing.T) {
	refusals := make(chan *bus.Error, 2)
	h := githubHarness(t, func(h *harness, rq routed) {
		go func() {
			for _, server := range []string{"gitlab", "internal-db"} {
				_ = h.bus.Publish(bus.ClientSubject(rq.env.Stream, server), []byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"from-`+server+`"}}`))
				reply, err := h.bus.Request(bus.ClientSubject(rq.env.Stream, server), []byte(`{"jsonrpc":"2.0","id":"mcpbus-s2c.`+server+`.w.1","method":"roots/list"}`), 10*time.Second)
				if err != nil {
					refusals <- bus.Errorf(bus.ErrInternal, "%v", err)
					continue
				}
				refusals <- bus.ReplyError(reply)
			}
			_ = h.bus.Publish(bus.ClientSubject(rq.env.Stream, "github"), []byte(`{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"from-github"}}`))
			rq.respond(`{"content":[]}`)
		}()
	})
	s := initialize(t, h.url+"/mcp", userKey)
	_, body := rpcPost(t, h.url+"/mcp", s, toolsCall)
	if !strings.Contains(body, "from-github") || strings.Contains(body, "from-gitlab") || strings.Contains(body, "from-internal-db") || strings.Contains(body, "roots/list") {
		t.Fatalf("the stream of a caller allowed only github: %s", body)
	}
	for range 2 {
		if e := <-refusals; e == nil || e.Kind != bus.ErrNotPermitted {
			t.Fatalf("a request from a server the caller may not use: %v, want NOT_PERMITTED", e)
		}
	}
}

// A try dropped as past its accept-by by a responder whose clock agrees
// with this one (it was late: busy, or resumed from a freeze) is sent
// again; liveness stays on. Only a clock ahead turns it off.
func TestLateResponderIsNotClockSkew(t *testing.T) {
	for _, c := range []struct {
		name   string
		ahead  time.Duration
		skewed bool
	}{{"late", 0, false}, {"clock ahead", 5 * time.Second, true}} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			n := 0
			h := newHarness(t, Options{}, func(h *harness, rq routed) {
				mu.Lock()
				n++
				first := n == 1
				mu.Unlock()
				if first && rq.acceptBy != "" {
					_ = h.bus.PublishMsg(&nats.Msg{Subject: rq.replyTo, Header: nats.Header{
						bus.HeaderProgress: {bus.ProgressExpired}, bus.HeaderAcceptBy: {rq.acceptBy},
						bus.HeaderNow: {fmt.Sprint(time.Now().Add(c.ahead).UnixMilli())}}})
					return
				}
				rq.respond(`{"ok":true}`)
			})
			s := initialize(t, h.url+"/mcp", userKey)
			if resp, body := rpcPost(t, h.url+"/mcp", s, toolsCall); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"ok":true`) {
				t.Fatalf("HTTP %d %s", resp.StatusCode, body)
			}
			if got := len(h.received("tools/call")); got != 2 {
				t.Fatalf("the router got %d tries, want 2", got)
			}
			if h.g.clockSkew.Load() != c.skewed {
				t.Fatalf("liveness off (clock skew assumed): %v, want %v", h.g.clockSkew.Load(), c.skewed)
			}
		})
	}
}
