package ingress

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// A harness is one ingress on a real embedded NATS server, served over real
// HTTP on loopback, with fakeVerify for auth and a stand-in router: a micro
// service on bus.SubjectRouterRPC that answers initialize itself and hands
// every other request to the test's route function, as the real router
// would hand it to a worker.
type harness struct {
	t   *testing.T
	ns  *server.Server
	bus *nats.Conn // the stand-ins' connection (router, workers)
	g   *Ingress
	url string

	mu    sync.Mutex
	route func(h *harness, rq routed)
	seen  []routed // every message the router received
}

// routed is one message the stand-in router received.
type routed struct {
	env   bus.Envelope
	msg   *bus.Message
	reply bus.Reply
	// replyTo and acceptBy are the request's reply subject and liveness
	// tag (bus.HeaderAcceptBy), for a test that plays the liveness protocol.
	replyTo, acceptBy string
}

func (r routed) respond(result string) {
	_ = r.reply.Respond(bus.ResultResponse(r.msg.ID, json.RawMessage(result)))
}

// newHarness starts a NATS server, the stand-ins and an ingress.
func newHarness(t *testing.T, o Options, route func(h *harness, rq routed)) *harness {
	t.Helper()
	return newHarnessOn(t, bustest.Server(t), o, route)
}

// newHarnessOn is newHarness on a NATS server the test started.
func newHarnessOn(t *testing.T, ns *server.Server, o Options, route func(h *harness, rq routed)) *harness {
	t.Helper()
	h := &harness{t: t, ns: ns, bus: bustest.Conn(t, ns), route: route}
	fakeVerify(t, h.bus)
	svc, err := micro.AddService(h.bus, micro.Config{Name: "stand-in-router", Version: "0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	err = svc.AddEndpoint("rpc", micro.HandlerFunc(h.serveRouter), micro.WithEndpointSubject(bus.SubjectRouterRPC))
	if err != nil {
		t.Fatal(err)
	}
	h.g, h.url = h.startIngress(o)
	return h
}

// startIngress starts one more ingress process on the harness's NATS server.
func (h *harness) startIngress(o Options) (*Ingress, string) {
	h.t.Helper()
	nc, err := natsnode.ConnectInProcess(h.ns, natsnode.ConnectOptions{Name: "ingress"})
	if err != nil {
		h.t.Fatal(err)
	}
	o.NC = nc
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.InternalRanges == nil {
		o.InternalRanges = internalNet // the HTTP client is 127.0.0.1: external
	}
	g := New(o)
	if err := nc.Flush(); err != nil {
		h.t.Fatal(err)
	}
	srv := httptest.NewServer(g.Handler())
	h.t.Cleanup(func() { g.Close(); srv.Close(); nc.Close() })
	return g, srv.URL
}

// withJetStream is Options for an ingress that keeps sessions in the bucket.
func (h *harness) withJetStream(o Options) Options {
	h.t.Helper()
	js, err := jetstream.New(bustest.Conn(h.t, h.ns))
	if err != nil {
		h.t.Fatal(err)
	}
	o.JetStream = js
	return o
}

func (h *harness) serveRouter(req micro.Request) {
	env, msg, e := bus.DecodeRequest(req)
	if e != nil {
		bus.RespondError(req, e)
		return
	}
	rq := routed{env: env, msg: msg, reply: bus.NewReply(h.bus, req), replyTo: req.Reply(), acceptBy: nats.Header(req.Headers()).Get(bus.HeaderAcceptBy)}
	h.mu.Lock()
	h.seen = append(h.seen, rq)
	route := h.route
	h.mu.Unlock()
	if msg.Method == "initialize" {
		var p struct {
			ProtocolVersion string `json:"protocolVersion"`
		}
		_ = json.Unmarshal(msg.Params, &p)
		if !bus.SupportedProtocolVersion(p.ProtocolVersion) {
			p.ProtocolVersion = bus.LatestProtocolVersion
		}
		rq.respond(`{"protocolVersion":"` + p.ProtocolVersion + `","capabilities":{},"serverInfo":{"name":"mcpbus","version":"test"}}`)
		return
	}
	if !msg.IsRequest() {
		return
	}
	if route == nil {
		rq.respond(`{}`)
		return
	}
	route(h, rq)
}

// received returns the messages of method the router got.
func (h *harness) received(method string) []routed {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []routed
	for _, r := range h.seen {
		if r.msg.Method == method {
			out = append(out, r)
		}
	}
	return out
}

var userKey = http.Header{"Authorization": {"Bearer " + testUserKey}}

// do sends one HTTP request to base+path.
func do(t *testing.T, method, url string, header http.Header, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp
}

// rpcPost posts a JSON-RPC message accepting JSON and SSE, and returns the
// response with its body read.
func rpcPost(t *testing.T, url string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	h := header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if h.Get("Accept") == "" {
		h.Set("Accept", "application/json, text/event-stream")
	}
	resp := do(t, http.MethodPost, url, h, body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const testInit = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{ "sampling": {}, "roots":{"listChanged":true}},"clientInfo":{"name":"t","version":"1"}}}`

// initialize opens a session on url and returns headers for later requests.
func initialize(t *testing.T, url string, header http.Header) http.Header {
	t.Helper()
	resp, body := rpcPost(t, url, header, testInit)
	sid := resp.Header.Get("Mcp-Session-Id")
	if resp.StatusCode != http.StatusOK || sid == "" {
		t.Fatalf("initialize: HTTP %d session %q: %s", resp.StatusCode, sid, body)
	}
	h := header.Clone()
	h.Set("Mcp-Session-Id", sid)
	h.Set("Mcp-Protocol-Version", "2025-11-25")
	return h
}

// sseEvent is one event (or comment) read from a stream.
type sseEvent struct {
	id, event, data, retry, comment string
}

// events reads an SSE body in the background.
type events struct {
	resp *http.Response
	ch   chan sseEvent
}

func readEvents(resp *http.Response) *events {
	ev := &events{resp: resp, ch: make(chan sseEvent, 64)}
	go func() {
		defer close(ev.ch)
		sc := bufio.NewScanner(resp.Body)
		var cur sseEvent
		var data []string
		has := false
		for sc.Scan() {
			line := sc.Text()
			if line == "" {
				if has {
					cur.data = strings.Join(data, "\n")
					ev.ch <- cur
				}
				cur, data, has = sseEvent{}, nil, false
				continue
			}
			has = true
			k, v, _ := strings.Cut(line, ":")
			v = strings.TrimPrefix(v, " ")
			switch k {
			case "":
				cur.comment = v
			case "id":
				cur.id = v
			case "event":
				cur.event = v
			case "data":
				data = append(data, v)
			case "retry":
				cur.retry = v
			}
		}
	}()
	return ev
}

// next returns the next event, failing the test after d.
func (ev *events) next(t *testing.T, d time.Duration) sseEvent {
	t.Helper()
	select {
	case e, ok := <-ev.ch:
		if !ok {
			t.Fatal("the stream ended")
		}
		return e
	case <-time.After(d):
		t.Fatalf("no event within %s", d)
	}
	return sseEvent{}
}

// nextMessage skips comments and priming events.
func (ev *events) nextMessage(t *testing.T, d time.Duration) sseEvent {
	t.Helper()
	for {
		e := ev.next(t, d)
		if e.comment == "" && e.data != "" {
			return e
		}
	}
}

// none checks that no message arrives within d.
func (ev *events) none(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case e, ok := <-ev.ch:
			if !ok {
				return
			}
			if e.comment == "" && e.data != "" {
				t.Fatalf("unexpected event %+v", e)
			}
		case <-deadline:
			return
		}
	}
}

// ended waits for the stream to end.
func (ev *events) ended(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-ev.ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatalf("the stream did not end within %s", d)
		}
	}
}

// openGET opens a session's GET stream.
func openGET(t *testing.T, url string, header http.Header) (*http.Response, *events) {
	t.Helper()
	h := header.Clone()
	h.Set("Accept", "text/event-stream")
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header = h
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		return resp, nil
	}
	return resp, readEvents(resp)
}

// rpcError decodes a JSON-RPC error body.
func rpcError(t *testing.T, body string) (code int, message, mcpbusCode string) {
	t.Helper()
	var b struct {
		Error struct {
			Code    int               `json:"code"`
			Message string            `json:"message"`
			Data    map[string]string `json:"data"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("not a JSON-RPC body: %q", body)
	}
	return b.Error.Code, b.Error.Message, b.Error.Data["mcpbus_code"]
}
