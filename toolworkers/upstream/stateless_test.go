package upstream

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The tests below put the client in front of real go-sdk v1.8.0 servers:
// a stateless one (MCP 2026-07-28, StreamableHTTPOptions.Stateless) and a
// stateful one (the session era), behind a recorder that keeps what each
// POST carried.

// seenPost is one HTTP request a recorded server received.
type seenPost struct {
	method string // the HTTP method
	header http.Header
	msg    bus.Message
}

// recorder wraps an MCP handler, keeping every request; swap replaces the
// handler (a server redeployed in another era).
type recorder struct {
	mu   sync.Mutex
	seen []seenPost
	h    atomic.Pointer[http.Handler]
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	s := seenPost{method: r.Method, header: r.Header.Clone()}
	_ = json.Unmarshal(body, &s.msg)
	rec.mu.Lock()
	rec.seen = append(rec.seen, s)
	rec.mu.Unlock()
	(*rec.h.Load()).ServeHTTP(w, r)
}

func (rec *recorder) swap(h http.Handler) { rec.h.Store(&h) }

// posts are the JSON-RPC methods received, in order.
func (rec *recorder) posts() []string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []string
	for _, s := range rec.seen {
		if s.method == http.MethodPost {
			out = append(out, s.msg.Method)
		}
	}
	return out
}

func (rec *recorder) last(method string) seenPost {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := len(rec.seen) - 1; i >= 0; i-- {
		if rec.seen[i].msg.Method == method {
			return rec.seen[i]
		}
	}
	return seenPost{}
}

// slowStarted is closed by the slow tool when it starts; slowEnded when its
// context ends.
type eraServer struct {
	srv         *mcp.Server
	slowStarted chan struct{}
	slowEnded   chan struct{}
}

// newEraServer is a server of both eras (go-sdk's default), or of the
// stateless era alone with only2026.
func newEraServer(only2026 ...bool) *eraServer {
	e := &eraServer{slowStarted: make(chan struct{}), slowEnded: make(chan struct{})}
	opts := &mcp.ServerOptions{Instructions: "test server"}
	if len(only2026) > 0 && only2026[0] {
		opts.SupportedProtocolVersions = []string{"2026-07-28"}
	}
	e.srv = mcp.NewServer(&mcp.Implementation{Name: "era-upstream", Version: "7.0"}, opts)
	e.srv.AddTool(&mcp.Tool{Name: "echo", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "echo:" + string(req.Params.Arguments)}}}, nil
		})
	e.srv.AddTool(&mcp.Tool{Name: "logs", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: "from the tool"})
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "logged"}}}, nil
		})
	e.srv.AddTool(&mcp.Tool{Name: "slow", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			close(e.slowStarted)
			<-ctx.Done()
			close(e.slowEnded)
			return nil, ctx.Err()
		})
	return e
}

func (e *eraServer) modern() http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return e.srv },
		&mcp.StreamableHTTPOptions{Stateless: true, PropagateRequestCancellation: true})
}

// dual serves both eras as a dual-era server does: a request of the
// stateless era (by its MCP-Protocol-Version header, which every such
// request carries) statelessly, any other on a session.
func (e *eraServer) dual() http.Handler {
	modern, legacy := e.modern(), e.legacy()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Mcp-Protocol-Version") >= "2026-07-28" {
			modern.ServeHTTP(w, r)
			return
		}
		legacy.ServeHTTP(w, r)
	})
}

func (e *eraServer) legacy() http.Handler {
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return e.srv }, nil)
}

// serveRecorded serves h on loopback behind a recorder.
func serveRecorded(t *testing.T, h http.Handler) (*recorder, string) {
	rec := &recorder{}
	rec.swap(h)
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return rec, srv.URL + "/mcp"
}

func eraClient(t *testing.T, url string, era *Era) *streamableClient {
	c := newStreamableClient(testServer, url, http.Header{"X-Api-Key": {testAPIKey}}, bus.LatestProtocolVersion, nil)
	c.era = era
	t.Cleanup(c.Close)
	return c
}

func TestStatelessUpstreamCallsWithoutASession(t *testing.T) {
	e := newEraServer()
	rec, url := serveRecorded(t, e.modern())
	era := &Era{}
	c := eraClient(t, url, era)
	ctx := WithCaller(ctxTimeout(t, 10*time.Second), Caller{Modern: true, Caps: json.RawMessage(`{"elicitation":{}}`), LogLevel: "debug"})

	msg, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo","arguments":{"q":"é"},"_meta":{"progressToken":"mcpbus-p1"}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Error) > 0 || !strings.Contains(string(msg.Result), `echo:{\"q\":\"é\"}`) || !strings.Contains(string(msg.Result), `"resultType":"complete"`) {
		t.Fatalf("tools/call answered %s %s", msg.Result, msg.Error)
	}
	if !era.Modern() {
		t.Fatal("the probe did not record the stateless era for the server's other clients")
	}
	if got := strings.Join(rec.posts(), ","); got != "server/discover,tools/call" {
		t.Fatalf("upstream saw %s, want server/discover,tools/call: no initialize, no session", got)
	}
	call := rec.last("tools/call")
	for h, want := range map[string]string{"Mcp-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "echo", "X-Api-Key": testAPIKey, "Mcp-Session-Id": ""} {
		if got := call.header.Get(h); got != want {
			t.Errorf("tools/call header %s = %q, want %q", h, got, want)
		}
	}
	var p struct {
		Meta map[string]json.RawMessage `json:"_meta"`
	}
	_ = json.Unmarshal(call.msg.Params, &p)
	for k, want := range map[string]string{
		bus.MetaProtocolVersion:    `"2026-07-28"`,
		bus.MetaClientCapabilities: `{"elicitation":{}}`,
		bus.MetaLogLevel:           `"debug"`,
		"progressToken":            `"mcpbus-p1"`,
	} {
		if got := string(p.Meta[k]); got != want {
			t.Errorf("tools/call _meta[%s] = %s, want %s", k, got, want)
		}
	}
	if !strings.Contains(string(p.Meta[bus.MetaClientInfo]), `"name":"mcpbus"`) {
		t.Errorf("clientInfo %s does not name mcpbus", p.Meta[bus.MetaClientInfo])
	}

	// Info is the discover result in initialize's shape, without the list
	// notifications mcpbus cannot bridge yet.
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ir struct {
		ProtocolVersion string                     `json:"protocolVersion"`
		Capabilities    map[string]json.RawMessage `json:"capabilities"`
		ServerInfo      struct{ Name, Version string }
		Instructions    string `json:"instructions"`
	}
	if err := json.Unmarshal(info, &ir); err != nil || ir.ProtocolVersion != "2026-07-28" || ir.ServerInfo.Name != "era-upstream" || ir.Instructions != "test server" {
		t.Fatalf("Info = %s (%v)", info, err)
	}
	if string(ir.Capabilities["tools"]) != `{"listChanged":true}` {
		t.Fatalf("Info capabilities %s: want tools that say when they change", info)
	}

	// Closing sends no DELETE: there is no session to end.
	c.Close()
	for _, s := range rec.seen {
		if s.method != http.MethodPost {
			t.Fatalf("the client sent %s to a stateless server", s.method)
		}
	}
}

func TestStatelessUpstreamErrorsAreAnswersNotFailures(t *testing.T) {
	e := newEraServer()
	_, url := serveRecorded(t, e.modern())
	c := eraClient(t, url, &Era{})
	ctx := WithCaller(ctxTimeout(t, 10*time.Second), Caller{Modern: true})
	// go-sdk answers an unknown method with HTTP 404 and -32601: the
	// JSON-RPC error is relayed, not turned into a gateway failure.
	msg, err := c.Call(ctx, "completion/nonsense", json.RawMessage(`{}`), nil)
	if err != nil {
		t.Fatalf("an upstream JSON-RPC error became a gateway error: %v", err)
	}
	if !strings.Contains(string(msg.Error), "-32601") {
		t.Fatalf("error %s, want -32601", msg.Error)
	}
	// Methods the era removed are answered here.
	msg, err = c.Call(ctx, "logging/setLevel", json.RawMessage(`{"level":"info"}`), nil)
	if err != nil || string(msg.Result) != `{}` {
		t.Fatalf("logging/setLevel = %v, %v", msg, err)
	}
	// resources/subscribe goes on the listen (listen_resources.go), and
	// this server declares no subscriptions.
	msg, err = c.Call(ctx, "resources/subscribe", json.RawMessage(`{"uri":"x://y"}`), nil)
	if err != nil || !strings.Contains(string(msg.Error), "-32601") || !strings.Contains(string(msg.Error), "does not support resource subscriptions") {
		t.Fatalf("resources/subscribe = %s, %v: want -32601, no subscriptions", msg.Error, err)
	}
	if err := c.Notify(ctx, "notifications/roots/list_changed", nil); err != nil {
		t.Fatalf("Notify on a stateless server: %v", err)
	}
}

func TestStatelessUpstreamLogLevelComesFromTheCaller(t *testing.T) {
	e := newEraServer()
	_, url := serveRecorded(t, e.modern())
	c := eraClient(t, url, &Era{})
	for _, tc := range []struct {
		level string
		want  int
	}{{"", 0}, {"info", 1}, {"error", 0}} {
		r := &recordingRelay{}
		ctx := WithCaller(ctxTimeout(t, 10*time.Second), Caller{Modern: true, LogLevel: tc.level})
		if _, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"logs"}`), r); err != nil {
			t.Fatal(err)
		}
		if got := r.count("notifications/message"); got != tc.want {
			t.Errorf("caller level %q: %d log messages relayed, want %d", tc.level, got, tc.want)
		}
	}
}

func TestStatelessUpstreamCancelIsClosingThePost(t *testing.T) {
	e := newEraServer()
	rec, url := serveRecorded(t, e.modern())
	c := eraClient(t, url, &Era{})
	ctx, cancel := context.WithCancel(WithCaller(ctxTimeout(t, 10*time.Second), Caller{Modern: true}))
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"slow"}`), nil)
		done <- err
	}()
	<-e.slowStarted
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled call succeeded")
	}
	select {
	case <-e.slowEnded:
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream tool kept running after its POST was closed")
	}
	c.Close() // waits for anything the client sent in the background
	for _, m := range rec.posts() {
		if m == "notifications/cancelled" {
			t.Fatal("the client sent notifications/cancelled, which the stateless era has no use for over HTTP")
		}
	}
}

func TestEraProbeFindsASessionServerOnceForAllClients(t *testing.T) {
	e := newEraServer()
	rec, url := serveRecorded(t, e.legacy())
	era := &Era{}
	for i := 0; i < 2; i++ {
		c := eraClient(t, url, era)
		msg, err := c.Call(ctxTimeout(t, 10*time.Second), "tools/call", json.RawMessage(`{"name":"echo","arguments":{}}`), nil)
		if err != nil || len(msg.Error) > 0 {
			t.Fatalf("client %d: %v %s", i, err, msg.Error)
		}
	}
	if era.Modern() || era.get() != eraLegacy {
		t.Fatalf("era = %q, want legacy", era.get())
	}
	want := "server/discover,initialize,notifications/initialized,tools/call,initialize,notifications/initialized,tools/call"
	if got := strings.Join(rec.posts(), ","); got != want {
		t.Fatalf("upstream saw %s,\nwant %s (one probe for both clients)", got, want)
	}
}

func TestEraChangeIsFollowed(t *testing.T) {
	e := newEraServer()
	rec, url := serveRecorded(t, e.modern())
	era := &Era{}
	c := eraClient(t, url, era)
	call := func() {
		t.Helper()
		msg, err := c.Call(WithCaller(ctxTimeout(t, 10*time.Second), Caller{Modern: true}), "tools/call", json.RawMessage(`{"name":"echo","arguments":{}}`), nil)
		if err != nil || len(msg.Error) > 0 {
			t.Fatalf("call: %v %v", err, msg)
		}
	}
	call()
	// Redeployed in the session era: the stateless request is refused
	// with -32022, the client probes again, initializes and retries.
	rec.swap(e.legacy())
	call()
	if era.get() != eraLegacy {
		t.Fatalf("era = %q after the server left the stateless era", era.get())
	}
	// And back, to a server that speaks only the new era: the session is
	// gone (404), initialize is refused, the client probes again and the
	// same call goes through.
	rec.swap(modernOnly(newEraServer(true).modern()))
	call()
	if !era.Modern() {
		t.Fatalf("era = %q after the server came back to the stateless era", era.get())
	}
}

// A client that reports what comes outside calls keeps a
// subscriptions/listen open to a stateless server, and hears its list
// changes there, as it hears a session server's on the GET stream.
func TestStatelessUpstreamListChangesComeOnAListen(t *testing.T) {
	e := newEraServer(true)
	acked := make(chan struct{})
	var once sync.Once
	// The server has the listen once it has sent its acknowledgement.
	rec, url := serveRecorded(t, upstreamtest.AckWatch(e.modern(), func() { once.Do(func() { close(acked) }) }))
	c := eraClient(t, url, &Era{})
	heard := make(chan string, 4)
	c.events = &changeEvents{heard: heard}
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := c.Call(ctx, "tools/list", nil, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-acked:
	case <-ctx.Done():
		t.Fatalf("no listen was acknowledged; the server saw %v", rec.posts())
	}
	e.srv.AddTool(&mcp.Tool{Name: "new", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	select {
	case got := <-heard:
		if got != "notifications/tools/list_changed" {
			t.Fatalf("heard %s, want notifications/tools/list_changed", got)
		}
	case <-ctx.Done():
		t.Fatal("the list change was not heard")
	}
	listen := rec.last("subscriptions/listen")
	if listen.header.Get("Mcp-Method") != "subscriptions/listen" || !bytes.Contains(listen.msg.Params, []byte(`"toolsListChanged":true`)) {
		t.Fatalf("the listen went out as %v %s", listen.header, listen.msg.Params)
	}
	c.Close() // ends the listen, and waits for it
}

// changeEvents passes on the notifications a client hears outside calls.
type changeEvents struct{ heard chan string }

func (changeEvents) SessionOpened() {}
func (changeEvents) SessionLost()   {}
func (e *changeEvents) SessionNotification(method string, _ json.RawMessage) {
	e.heard <- method
}
func (changeEvents) ServerRequest(_ context.Context, m *bus.Message) []byte {
	return Refusal(m.ID, CodeMethodNotFound, "no")
}

// modernOnly is a server of the new era alone: a request with a session
// gets 404, one of an older revision 400.
func modernOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Mcp-Session-Id") != "":
			http.Error(w, "not found", http.StatusNotFound)
		case r.Header.Get("Mcp-Protocol-Version") < "2026-07-28":
			http.Error(w, "this server speaks MCP 2026-07-28 only", http.StatusBadRequest)
		default:
			h.ServeHTTP(w, r)
		}
	})
}

func TestPinnedEraSkipsTheProbe(t *testing.T) {
	e := newEraServer()
	rec, url := serveRecorded(t, e.legacy())
	c := eraClient(t, url, PinnedEra("2025-06-18"))
	if _, err := c.Call(ctxTimeout(t, 10*time.Second), "tools/call", json.RawMessage(`{"name":"echo"}`), nil); err != nil {
		t.Fatal(err)
	}
	if rec.posts()[0] != "initialize" {
		t.Fatalf("a pinned session-era server was probed: %v", rec.posts())
	}
	// Pinned to the new era, a server that does not speak it is an error
	// that says so.
	c2 := eraClient(t, url, PinnedEra("2026-07-28"))
	_, err := c2.Call(ctxTimeout(t, 10*time.Second), "tools/call", json.RawMessage(`{"name":"echo"}`), nil)
	if err == nil || !strings.Contains(err.Error(), "spec_version") {
		t.Fatalf("pinned 2026-07-28 against a session server: %v, want an error naming spec_version", err)
	}
	_, err = c2.Call(WithCaller(ctxTimeout(t, 10*time.Second), Caller{Modern: true}), "tools/call", json.RawMessage(`{"name":"echo"}`), nil)
	if err == nil || !strings.Contains(err.Error(), "spec_version") {
		t.Fatalf("pinned 2026-07-28 against a session server: %v, want an error naming spec_version", err)
	}
}

// A server of both eras serves each caller in its own: a 2025-11-25
// caller on a session (where the server can still ask it for input), a
// 2026-07-28 caller statelessly; a server of the new era alone serves
// everyone statelessly, a session-era caller declaring no capabilities.
func TestEachCallerInItsEra(t *testing.T) {
	rec, url := serveRecorded(t, newEraServer().dual())
	era := &Era{}
	c := eraClient(t, url, era)
	legacy := ctxTimeout(t, 10*time.Second)
	modern := WithCaller(legacy, Caller{Modern: true})
	for _, ctx := range []context.Context{legacy, modern, legacy} {
		if msg, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"echo","arguments":{}}`), nil); err != nil || len(msg.Error) > 0 {
			t.Fatalf("call: %v %v", err, msg)
		}
	}
	if !era.Modern() || !era.sessionsToo() {
		t.Fatalf("era %q sessionsToo %v: want a modern server that keeps sessions too", era.get(), era.sessionsToo())
	}
	var calls []string
	rec.mu.Lock()
	for _, s := range rec.seen {
		if s.msg.Method == "tools/call" {
			calls = append(calls, fmt.Sprintf("session=%t meta=%t", s.header.Get("Mcp-Session-Id") != "", bytes.Contains(s.msg.Params, []byte(bus.MetaProtocolVersion))))
		}
	}
	rec.mu.Unlock()
	if want := "session=true meta=false,session=false meta=true,session=true meta=false"; strings.Join(calls, ",") != want {
		t.Fatalf("calls went %s, want %s", strings.Join(calls, ","), want)
	}

	rec2, url2 := serveRecorded(t, modernOnly(newEraServer(true).modern()))
	c2 := eraClient(t, url2, &Era{})
	if msg, err := c2.Call(legacy, "tools/call", json.RawMessage(`{"name":"echo","arguments":{}}`), nil); err != nil || len(msg.Error) > 0 {
		t.Fatalf("session-era caller on a 2026-only server: %v %v", err, msg)
	}
	if got := strings.Join(rec2.posts(), ","); got != "server/discover,tools/call" {
		t.Fatalf("a 2026-only server saw %s, want server/discover,tools/call", got)
	}
	if call := rec2.last("tools/call"); !bytes.Contains(call.msg.Params, []byte(`"`+bus.MetaClientCapabilities+`":{}`)) {
		t.Fatalf("a session-era caller declared capabilities to a 2026-only server: %s", call.msg.Params)
	}
}

// recordingRelay counts what reaches it.
type recordingRelay struct {
	mu      sync.Mutex
	methods []string
}

func (r *recordingRelay) Notify(method string, _ json.RawMessage) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.methods = append(r.methods, method)
}
func (r *recordingRelay) Request(_ context.Context, m *bus.Message) []byte {
	return Refusal(m.ID, CodeMethodNotFound, "no")
}
func (r *recordingRelay) Hold()    {}
func (r *recordingRelay) Release() {}

func (r *recordingRelay) count(method string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.methods {
		if m == method {
			n++
		}
	}
	return n
}

// A tool whose parameter is mirrored into a header (x-mcp-header): the
// client learns it from tools/list and sends Mcp-Param-*; called before it
// has listed, the server refuses the call (-32020), and the client lists
// the tools and tries once more, as the spec asks of a client.
func TestStatelessUpstreamMirrorsAnnotatedParameters(t *testing.T) {
	e := newEraServer(true)
	e.srv.AddTool(&mcp.Tool{Name: "route", InputSchema: json.RawMessage(`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"},"q":{"type":"string"}}}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "routed"}}}, nil
		})
	rec, url := serveRecorded(t, e.modern())
	c := eraClient(t, url, &Era{})
	ctx := WithCaller(ctxTimeout(t, 10*time.Second), Caller{Modern: true})
	for i := 0; i < 2; i++ {
		msg, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"route","arguments":{"region":"Zürich","q":"x"}}`), nil)
		if err != nil || len(msg.Error) > 0 || !strings.Contains(string(msg.Result), "routed") {
			t.Fatalf("call %d: %v %v", i, err, msg)
		}
	}
	if got := strings.Join(rec.posts(), ","); got != "server/discover,tools/call,tools/list,tools/call,tools/call" {
		t.Fatalf("upstream saw %s: want the refused call, one tools/list, the retry, then the second call at once", got)
	}
	if got := rec.last("tools/call").header.Get("Mcp-Param-Region"); got != "=?base64?WsO8cmljaA==?=" {
		t.Fatalf("Mcp-Param-Region = %q, want the Base64 form of Zürich", got)
	}
}

// A tool whose annotations break the rules is left out of the list.
func TestLearnToolsDropsInvalidAnnotations(t *testing.T) {
	c := newStreamableClient("gh", "http://127.0.0.1:1/mcp", nil, "", nil)
	defer c.Close()
	in := json.RawMessage(`{"tools":[{"name":"ok","inputSchema":{"type":"object","properties":{"r":{"type":"string","x-mcp-header":"R"}}}},` +
		`{"name":"bad","inputSchema":{"type":"object","properties":{"l":{"type":"array","items":{"type":"string","x-mcp-header":"L"}}}}},` +
		`{"name":"plain","inputSchema":{"type":"object"}}],"nextCursor":"c2"}`)
	out := string(c.learnTools(in))
	if strings.Contains(out, `"bad"`) || !strings.Contains(out, `"ok"`) || !strings.Contains(out, `"plain"`) || !strings.Contains(out, `"nextCursor":"c2"`) {
		t.Fatalf("learnTools = %s: want bad dropped, the rest kept", out)
	}
	if got := c.paramHeaders(json.RawMessage(`{"name":"ok","arguments":{"r":"x"}}`)).Get("Mcp-Param-R"); got != "x" {
		t.Fatalf("Mcp-Param-R = %q after learning", got)
	}
	valid := json.RawMessage(`{"tools":[{"name":"plain","inputSchema":{"type":"object"}}]}`)
	if out := c.learnTools(valid); &out[0] != &valid[0] {
		t.Fatal("a list with nothing to drop was copied")
	}
}
