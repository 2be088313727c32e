package upstream

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// ---- a real go-sdk MCP server, served over legacy SSE here and over stdio by
// the helper process in stdio_test.go ----

type ccEchoIn struct {
	Text string `json:"text"`
}

type ccEchoOut struct {
	Echo string `json:"echo"`
	Len  int    `json:"len"`
}

type ccProgressIn struct {
	Steps   int `json:"steps"`
	DelayMS int `json:"delay_ms"`
}

type ccSleepIn struct {
	MS int `json:"ms"`
}

func ccText(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

// newCCServer returns a go-sdk server with the tools the tests call; closing
// done (nil: never) ends the sleep tool's calls.
func newCCServer(done <-chan struct{}) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "conn-test", Version: "1.2.3"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in ccEchoIn) (*mcp.CallToolResult, ccEchoOut, error) {
		return ccText(in.Text), ccEchoOut{Echo: in.Text, Len: len(in.Text)}, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "progress"}, func(ctx context.Context, req *mcp.CallToolRequest, in ccProgressIn) (*mcp.CallToolResult, any, error) {
		token := req.Params.GetProgressToken()
		for i := 1; i <= in.Steps; i++ {
			time.Sleep(time.Duration(in.DelayMS) * time.Millisecond) // real time: a tool the test asked to be slow
			if token == nil {
				continue
			}
			err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token, Progress: float64(i), Total: float64(in.Steps), Message: fmt.Sprint(token),
			})
			if err != nil {
				return nil, nil, err
			}
		}
		return ccText(fmt.Sprintf("done %v", token)), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "fail"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, &jsonrpc.Error{Code: -32042, Message: "tool exploded", Data: json.RawMessage(`{"why":"on purpose","n":[1,2]}`)}
	})
	mcp.AddTool(s, &mcp.Tool{Name: "pingback"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		if err := req.Session.Ping(ctx, nil); err != nil {
			return nil, nil, fmt.Errorf("ping failed: %v", err)
		}
		return ccText("pong"), nil, nil
	})
	// sleep sends one progress notification first (given a token), so a test
	// knows the call reached the server and is in flight.
	mcp.AddTool(s, &mcp.Tool{Name: "sleep"}, func(ctx context.Context, req *mcp.CallToolRequest, in ccSleepIn) (*mcp.CallToolResult, any, error) {
		if token := req.Params.GetProgressToken(); token != nil {
			if err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: 0, Message: "sleeping"}); err != nil {
				return nil, nil, err
			}
		}
		select {
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
			return ccText("slept"), nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-done:
			return nil, nil, errors.New("the test is over")
		}
	})
	mcp.AddTool(s, &mcp.Tool{Name: "env"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return ccText(strings.Join(os.Environ(), "\n")), nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "pid"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return ccText(strconv.Itoa(os.Getpid())), nil, nil
	})
	return s
}

// ---- helpers ----

const ccServer = "legacy"

func ccCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func ccKind(err error) bus.Kind { return bus.AsError(err).Kind }

// inFlight returns a relay for a call to the sleep tool (with a progress
// token) and a channel closed when its first notification arrives: the call
// has reached the server.
func inFlight() (Relay, <-chan struct{}) {
	arrived := make(chan struct{})
	var once sync.Once
	return relayTo(func(method string, _ json.RawMessage) {
		if method == "notifications/progress" {
			once.Do(func() { close(arrived) })
		}
	}), arrived
}

func toolCall(name string, args any, token any) json.RawMessage {
	p := map[string]any{"name": name, "arguments": args}
	if token != nil {
		p["_meta"] = map[string]any{"progressToken": token}
	}
	b, _ := json.Marshal(p)
	return b
}

// textResult returns the text of a tools/call result's first content item.
func textResult(t *testing.T, msg *bus.Message) string {
	t.Helper()
	if len(msg.Error) > 0 {
		t.Fatalf("upstream error %s", msg.Error)
	}
	var r struct {
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if err := json.Unmarshal(msg.Result, &r); err != nil || len(r.Content) == 0 {
		t.Fatalf("bad result %s: %v", msg.Result, err)
	}
	if r.IsError {
		t.Fatalf("tool error: %s", msg.Result)
	}
	return r.Content[0].Text
}

func jsonEqual(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("bad JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("bad JSON %s: %v", want, err)
	}
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	return bytes.Equal(gb, wb)
}

// progressLog collects the notifications one call receives.
type progressLog struct {
	mu     sync.Mutex
	events []json.RawMessage
	after  bool // a notification arrived after the call returned
	done   bool
}

func (p *progressLog) notify(method string, params json.RawMessage) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if method != "notifications/progress" {
		return
	}
	if p.done {
		p.after = true
	}
	p.events = append(p.events, append(json.RawMessage(nil), params...))
}

func (p *progressLog) finish() {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
}

func (p *progressLog) tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, e := range p.events {
		var v struct {
			ProgressToken any `json:"progressToken"`
		}
		json.Unmarshal(e, &v)
		out = append(out, fmt.Sprint(v.ProgressToken))
	}
	return out
}

// ---- legacy SSE against a real go-sdk server ----

// sseRecorder keeps every byte the SSE handler streams, so tests can compare
// what the client returns with what the server sent.
type sseRecorder struct {
	next http.Handler
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (r *sseRecorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method == http.MethodGet {
		w = &teeWriter{ResponseWriter: w, rec: r}
	}
	r.next.ServeHTTP(w, req)
}

// sent returns the raw "result" the server sent in its response to id.
func (r *sseRecorder) sent(t *testing.T, id json.RawMessage) json.RawMessage {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, line := range strings.Split(r.buf.String(), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			continue
		}
		var m map[string]json.RawMessage
		if json.Unmarshal([]byte(data), &m) == nil && string(m["id"]) == string(id) {
			return m["result"]
		}
	}
	t.Fatalf("server sent no response with id %s", id)
	return nil
}

type teeWriter struct {
	http.ResponseWriter
	rec *sseRecorder
}

func (w *teeWriter) Write(p []byte) (int, error) {
	w.rec.mu.Lock()
	w.rec.buf.Write(p)
	w.rec.mu.Unlock()
	return w.ResponseWriter.Write(p)
}

func (w *teeWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type sseUpstream struct {
	srv       *httptest.Server
	rec       *sseRecorder
	endSleeps func() // ends the sleep tool's calls (Close waits for them)
}

func newSSEUpstream(t *testing.T, wrap func(http.Handler) http.Handler) *sseUpstream {
	t.Helper()
	done := make(chan struct{})
	s := newCCServer(done)
	rec := &sseRecorder{next: mcp.NewSSEHandler(func(*http.Request) *mcp.Server { return s }, nil)}
	var h http.Handler = rec
	if wrap != nil {
		h = wrap(h)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	end := sync.OnceFunc(func() { close(done) })
	t.Cleanup(end) // first: Close waits for the calls
	return &sseUpstream{srv: srv, rec: rec, endSleeps: end}
}

func (u *sseUpstream) client(t *testing.T) *connClient {
	c := newSSEClient(ccServer, u.srv.URL+"/sse", nil, bus.LatestProtocolVersion, nil)
	t.Cleanup(c.Close)
	return c
}

func TestSSEInfoListAndVerbatimCall(t *testing.T) {
	u := newSSEUpstream(t, nil)
	c := u.client(t)
	ctx := ccCtx(t, 10*time.Second)

	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ir struct {
		ProtocolVersion string `json:"protocolVersion"`
		ServerInfo      struct {
			Name, Version string
		} `json:"serverInfo"`
	}
	if err := json.Unmarshal(info, &ir); err != nil || ir.ServerInfo.Name != "conn-test" || ir.ProtocolVersion == "" {
		t.Fatalf("info = %s (%v)", info, err)
	}

	msg, err := c.Call(ctx, "tools/list", json.RawMessage(`{}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"echo", "progress", "fail", "pingback"} {
		if !bytes.Contains(msg.Result, []byte(`"name":"`+tool+`"`)) {
			t.Errorf("tools/list lacks %s: %s", tool, msg.Result)
		}
	}

	msg, err = c.Call(ctx, "tools/call", toolCall("echo", map[string]any{"text": "héllo <&>"}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if sent := u.rec.sent(t, msg.ID); !bytes.Equal(msg.Result, sent) {
		t.Errorf("result not verbatim:\n got %s\nsent %s", msg.Result, sent)
	}
	var r struct {
		StructuredContent ccEchoOut `json:"structuredContent"`
	}
	if json.Unmarshal(msg.Result, &r); r.StructuredContent != (ccEchoOut{"héllo <&>", len("héllo <&>")}) {
		t.Errorf("structuredContent = %+v in %s", r.StructuredContent, msg.Result)
	}
}

func TestSSEProgressGoesToTheRightCall(t *testing.T) {
	u := newSSEUpstream(t, nil)
	c := u.client(t)
	ctx := ccCtx(t, 10*time.Second)
	if _, err := c.Info(ctx); err != nil {
		t.Fatal(err)
	}
	tokens := []any{"mcpbus-a", "mcpbus-b", 42}
	logs := make([]*progressLog, len(tokens))
	var wg sync.WaitGroup
	for i, tok := range tokens {
		logs[i] = &progressLog{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := c.Call(ctx, "tools/call", toolCall("progress", map[string]any{"steps": 4, "delay_ms": 10}, tok), relayTo(logs[i].notify))
			logs[i].finish()
			if err != nil {
				t.Errorf("call %v: %v", tok, err)
				return
			}
			if got := textResult(t, msg); got != fmt.Sprintf("done %v", tok) {
				t.Errorf("call %v: result %q", tok, got)
			}
		}()
	}
	wg.Wait()
	for i, tok := range tokens {
		got := logs[i].tokens()
		if len(got) != 4 {
			t.Errorf("call %v got %d progress notifications (%v), want 4", tok, len(got), got)
		}
		for _, g := range got {
			if g != fmt.Sprint(tok) {
				t.Errorf("call %v got progress for token %s", tok, g)
			}
		}
		if logs[i].after {
			t.Errorf("call %v: notify ran after Call returned", tok)
		}
	}
}

func TestSSEUpstreamErrorAndServerPing(t *testing.T) {
	u := newSSEUpstream(t, nil)
	c := u.client(t)
	ctx := ccCtx(t, 10*time.Second)

	msg, err := c.Call(ctx, "tools/call", toolCall("fail", map[string]any{}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Result) != 0 || !jsonEqual(t, msg.Error, []byte(`{"code":-32042,"message":"tool exploded","data":{"why":"on purpose","n":[1,2]}}`)) {
		t.Errorf("error not relayed: result %s error %s", msg.Result, msg.Error)
	}

	msg, err = c.Call(ctx, "tools/call", toolCall("pingback", map[string]any{}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := textResult(t, msg); got != "pong" {
		t.Errorf("pingback = %q", got)
	}

	// The go-sdk SSE server refuses a POST with an unknown method (HTTP 400):
	// that call fails, the session lives on.
	s := c.cur.Load()
	_, err = c.Call(ctx, "no/such/method", json.RawMessage(`{}`), nil)
	if ccKind(err) != bus.ErrUpstreamProtocol || !strings.Contains(err.Error(), "HTTP 400") {
		t.Errorf("unknown method: %v", err)
	}
	if _, err := c.Call(ctx, "tools/list", nil, nil); err != nil || c.cur.Load() != s {
		t.Errorf("session did not survive a refused message: %v", err)
	}
}

func TestSSEConnectionLostAndReconnect(t *testing.T) {
	u := newSSEUpstream(t, nil)
	c := u.client(t)
	ctx := ccCtx(t, 20*time.Second)
	if _, err := c.Info(ctx); err != nil {
		t.Fatal(err)
	}
	first := c.cur.Load()

	// A call in flight when the stream breaks fails at once, naming the server.
	// Which break it sees first depends on timing: the stream's ("connection
	// lost") or, when its POST is still being answered, the POST's ("is
	// unavailable: connection closed"); both are the unavailable error.
	errc := make(chan error, 1)
	relay, arrived := inFlight()
	go func() {
		_, err := c.Call(ctx, "tools/call", toolCall("sleep", map[string]any{"ms": 60000}, "mcpbus-hold"), relay)
		errc <- err
	}()
	select {
	case <-arrived: // the server is running the call
	case err := <-errc:
		t.Fatalf("the sleep call returned before the connection broke: %v", err)
	}
	u.srv.CloseClientConnections()
	select {
	case err := <-errc:
		if ccKind(err) != bus.ErrUpstreamUnavailable || !strings.Contains(err.Error(), `"legacy"`) || !strings.Contains(err.Error(), "connection") {
			t.Errorf("pending call: err = %v (%s)", err, ccKind(err).Code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pending call did not fail when the connection broke")
	}

	// The next call opens a new session.
	msg, err := c.Call(ctx, "tools/call", toolCall("echo", map[string]any{"text": "again"}, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := textResult(t, msg); got != "again" {
		t.Errorf("echo = %q", got)
	}
	if c.cur.Load() == first {
		t.Error("no new session after the connection broke")
	}

	// Server gone entirely.
	u.endSleeps() // Close waits for the server's sleep handler to end
	u.srv.CloseClientConnections()
	u.srv.Close()
	_, err = c.Call(ccCtx(t, 5*time.Second), "tools/list", nil, nil)
	if ccKind(err) != bus.ErrUpstreamUnavailable || !strings.Contains(err.Error(), `"legacy"`) {
		t.Errorf("server down: err = %v (%s)", err, ccKind(err).Code)
	}
}

func TestSSEErrorKindsDoNotLeakURL(t *testing.T) {
	const secret = "s3cr3t-token"
	u := newSSEUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Query().Get("mode") {
			case "auth":
				http.Error(w, "no", http.StatusUnauthorized)
			case "busy":
				http.Error(w, "later", http.StatusServiceUnavailable)
			case "html":
				w.Header().Set("Content-Type", "text/html")
				w.Write([]byte("<html>hello</html>"))
			default:
				next.ServeHTTP(w, r)
			}
		})
	})
	base := strings.Replace(u.srv.URL, "http://", "http://user:"+secret+"@", 1) + "/sse?key=" + secret
	cases := []struct {
		mode string
		kind bus.Kind
	}{
		{"auth", bus.ErrUpstreamAuth},
		{"busy", bus.ErrUpstreamUnavailable},
		{"html", bus.ErrUpstreamProtocol},
	}
	for _, tc := range cases {
		c := newSSEClient(ccServer, base+"&mode="+tc.mode, nil, bus.LatestProtocolVersion, nil)
		_, err := c.Call(ccCtx(t, 5*time.Second), "tools/list", nil, nil)
		c.Close()
		if ccKind(err) != tc.kind || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("%s: err = %v (%s), want %s without the URL", tc.mode, err, ccKind(err).Code, tc.kind.Code)
		}
	}

	// Connection refused.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c := newSSEClient(ccServer, "http://user:"+secret+"@"+addr+"/sse?key="+secret, nil, bus.LatestProtocolVersion, nil)
	defer c.Close()
	_, err := c.Info(ccCtx(t, 5*time.Second))
	if ccKind(err) != bus.ErrUpstreamUnavailable || strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), addr) {
		t.Errorf("refused: err = %v", err)
	}
}

func TestSSEConcurrentFirstCallsShareOneSession(t *testing.T) {
	var gets sync.Map
	var n int
	var mu sync.Mutex
	u := newSSEUpstream(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodGet {
				mu.Lock()
				n++
				mu.Unlock()
				gets.Store(r.RemoteAddr, true)
			}
			next.ServeHTTP(w, r)
		})
	})
	c := u.client(t)
	ctx := ccCtx(t, 10*time.Second)
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, err := c.Call(ctx, "tools/call", toolCall("echo", map[string]any{"text": strconv.Itoa(i)}, nil), nil)
			if err != nil {
				t.Error(err)
				return
			}
			if got := textResult(t, msg); got != strconv.Itoa(i) {
				t.Errorf("echo %d = %q", i, got)
			}
		}()
	}
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	if n != 1 {
		t.Errorf("%d SSE streams opened, want 1", n)
	}
}

// ---- scripted peer: exact wire behaviour ----

// peerConnector hands connClient one end of an in-memory pipe per connect; the
// test plays the server on the other end.
type peerConnector struct {
	peers chan *peer
}

func (d *peerConnector) transport() string  { return "sse" }
func (d *peerConnector) retryInit() bool    { return false }
func (d *peerConnector) gapErr() *bus.Error { return nil }
func (d *peerConnector) close()             {}
func (d *peerConnector) beginClose()        {}

func (d *peerConnector) connect(ctx context.Context) (*dialed, error) {
	a, b := net.Pipe()
	conn, _ := (&mcp.IOTransport{Reader: a, Writer: a}).Connect(ctx)
	p := &peer{conn: b, in: make(chan bus.Message, 64)}
	go p.read()
	d.peers <- p
	return &dialed{conn: conn, release: func() {}}, nil
}

type peer struct {
	conn net.Conn
	in   chan bus.Message
}

func (p *peer) read() {
	defer close(p.in)
	sc := bufio.NewScanner(p.conn)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m bus.Message
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			p.in <- m
		}
	}
}

func (p *peer) send(t *testing.T, s string) {
	t.Helper()
	if _, err := fmt.Fprintf(p.conn, "%s\n", s); err != nil {
		t.Fatalf("peer send: %v", err)
	}
}

func (p *peer) next(t *testing.T) bus.Message {
	t.Helper()
	select {
	case m, ok := <-p.in:
		if !ok {
			t.Fatal("peer: connection closed")
		}
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("peer: nothing received")
	}
	return bus.Message{}
}

// expect returns the next message with method, skipping (and returning) others.
func (p *peer) expect(t *testing.T, method string) (bus.Message, []bus.Message) {
	t.Helper()
	var other []bus.Message
	for {
		m := p.next(t)
		if m.Method == method {
			return m, other
		}
		other = append(other, m)
	}
}

const peerInit = `{"protocolVersion":"2024-11-05","capabilities":{"tools":{}},"serverInfo":{"name":"peer","version":"9"},"x-extra":  [1, 2 ]}`

func newPeerClient(t *testing.T) (*connClient, *peerConnector) {
	d := &peerConnector{peers: make(chan *peer, 4)}
	c := newConnClient(ccServer, d, "2024-11-05", 5*time.Second, nil)
	t.Cleanup(c.Close)
	return c, d
}

// handshake answers initialize after sending noise the client must ignore.
func (p *peer) handshake(t *testing.T) {
	t.Helper()
	init, _ := p.expect(t, "initialize")
	var params struct {
		ProtocolVersion string `json:"protocolVersion"`
		ClientInfo      struct{ Name string }
		Capabilities    map[string]any
	}
	if err := json.Unmarshal(init.Params, &params); err != nil || params.ProtocolVersion != "2024-11-05" || params.ClientInfo.Name != "mcpbus" || params.Capabilities == nil || len(params.Capabilities) != 0 {
		t.Errorf("initialize params %s", init.Params)
	}
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","data":"booting"}}`)
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"nobody","progress":1}}`)
	p.send(t, `{"jsonrpc":"2.0","id":"srv-1","method":"ping"}`)
	p.send(t, `{"jsonrpc":"2.0","id":`+string(init.ID)+`,"result":`+peerInit+`}`)
	_, other := p.expect(t, "notifications/initialized")
	if len(other) > 0 {
		p.in <- other[0] // the ping answer may come first; keep it
	}
}

func TestPeerInitializeRoutingAndVerbatimRelay(t *testing.T) {
	c, d := newPeerClient(t)
	ctx := ccCtx(t, 10*time.Second)

	infoc := make(chan json.RawMessage, 1)
	go func() {
		info, err := c.Info(ctx)
		if err != nil {
			t.Error(err)
		}
		infoc <- info
	}()
	p := <-d.peers
	p.handshake(t)
	if info := <-infoc; string(info) != peerInit {
		t.Errorf("Info = %s, want verbatim %s", info, peerInit)
	}
	// The server's ping was answered with an empty result.
	pong := p.next(t)
	if string(pong.ID) != `"srv-1"` || string(pong.Result) != `{}` {
		t.Errorf("ping answer = %+v", pong)
	}

	// Two concurrent calls; progress routed by token (string vs number).
	type out struct {
		msg *bus.Message
		err error
	}
	logA, logB := &progressLog{}, &progressLog{}
	resA, resB := make(chan out, 1), make(chan out, 1)
	go func() {
		m, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"a","_meta":{"progressToken":"tok-A"}}`), relayTo(logA.notify))
		resA <- out{m, err}
	}()
	reqA := p.next(t)
	go func() {
		m, err := c.Call(ctx, "tools/call", json.RawMessage(`{"name":"b","_meta":{"progressToken":7}}`), relayTo(logB.notify))
		resB <- out{m, err}
	}()
	reqB := p.next(t)
	if string(reqA.Params) != `{"name":"a","_meta":{"progressToken":"tok-A"}}` {
		t.Errorf("params not sent verbatim: %s", reqA.Params)
	}
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7.0,"progress":1}}`)
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-\u0041","progress":1}}`)
	p.send(t, `{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"tok-A","progress":2,"message":"half"}}`)
	p.send(t, `{"jsonrpc":"2.0","id":`+string(reqA.ID)+`,"error":{"code":-32099,"message":"bad \"thing\"","data":{"retry":false,"list":[1,"x"]}}}`)
	const resultB = `{"content":[{"type":"text","text":"b"}],"structuredContent":{"k":  1.50},"unknownField":{"z":null}}`
	p.send(t, `{"jsonrpc":"2.0","id":`+string(reqB.ID)+`,"result":`+resultB+`}`)

	a, b := <-resA, <-resB
	if a.err != nil || b.err != nil {
		t.Fatal(a.err, b.err)
	}
	if !jsonEqual(t, a.msg.Error, []byte(`{"code":-32099,"message":"bad \"thing\"","data":{"retry":false,"list":[1,"x"]}}`)) || len(a.msg.Result) != 0 {
		t.Errorf("error relayed as %s / %s", a.msg.Error, a.msg.Result)
	}
	if string(b.msg.Result) != resultB {
		t.Errorf("result not verbatim:\n got %s\nwant %s", b.msg.Result, resultB)
	}
	if got := logA.tokens(); strings.Join(got, ",") != "tok-A,tok-A" {
		t.Errorf("call A progress tokens %v", got)
	}
	if got := logB.tokens(); strings.Join(got, ",") != "7" {
		t.Errorf("call B progress tokens %v", got)
	}

	// A server-to-client request other than ping is refused with -32601.
	p.send(t, `{"jsonrpc":"2.0","id":99,"method":"sampling/createMessage","params":{}}`)
	refusal := p.next(t)
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(refusal.Error, &e); err != nil || string(refusal.ID) != "99" || e.Code != -32601 || !strings.Contains(e.Message, "sampling/createMessage") {
		t.Errorf("refusal = %s %s", refusal.ID, refusal.Error)
	}
}

func TestPeerCancelAndConnectionLoss(t *testing.T) {
	c, d := newPeerClient(t)
	ctx := ccCtx(t, 10*time.Second)
	go c.Info(ctx)
	p := <-d.peers
	p.handshake(t)
	p.next(t) // ping answer

	// A call whose context ends is abandoned and cancelled upstream. Its
	// deadline passes once the peer has the request (the peer never answers).
	short, expire := bustest.ExpiringContext(ctx)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(short, "tools/call", json.RawMessage(`{"name":"slow"}`), nil)
		errc <- err
	}()
	req := p.next(t)
	expire()
	if err := <-errc; ccKind(err) != bus.ErrUpstreamTimeout {
		t.Errorf("timeout: err = %v", err)
	}
	cancelled := p.next(t)
	if cancelled.Method != "notifications/cancelled" || !bytes.Contains(cancelled.Params, []byte(`"requestId":`+string(req.ID))) {
		t.Errorf("cancel notification = %+v", cancelled)
	}
	// Its late response is dropped; the session lives on.
	p.send(t, `{"jsonrpc":"2.0","id":`+string(req.ID)+`,"result":{}}`)

	// A pending call fails when the connection breaks.
	errc = make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "tools/list", nil, nil)
		errc <- err
	}()
	p.next(t)
	p.conn.Close()
	select {
	case err := <-errc:
		if ccKind(err) != bus.ErrUpstreamUnavailable || err.Error() != `upstream server "legacy" (sse): connection lost` {
			t.Errorf("err = %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("pending call survived the broken connection")
	}

	// The next call connects again.
	resc := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "tools/list", nil, nil)
		resc <- err
	}()
	p2 := <-d.peers
	p2.handshake(t)
	m, _ := p2.expect(t, "tools/list")
	p2.send(t, `{"jsonrpc":"2.0","id":`+string(m.ID)+`,"result":{"tools":[]}}`)
	if err := <-resc; err != nil {
		t.Fatal(err)
	}
}

func TestPeerRefusedInitialize(t *testing.T) {
	c, d := newPeerClient(t)
	errc := make(chan error, 1)
	go func() {
		_, err := c.Info(ccCtx(t, 5*time.Second))
		errc <- err
	}()
	p := <-d.peers
	init := p.next(t)
	p.send(t, `{"jsonrpc":"2.0","id":`+string(init.ID)+`,"error":{"code":-32602,"message":"unsupported protocol version"}}`)
	err := <-errc
	if ccKind(err) != bus.ErrUpstreamProtocol || !strings.Contains(err.Error(), "unsupported protocol version") {
		t.Errorf("err = %v", err)
	}
}

func TestCanonicalIDOfProgressTokens(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{`"x"`, `"\u0078"`},
		{`7`, `7`},
	} {
		if bus.CanonicalID(json.RawMessage(tc.a)) != bus.CanonicalID(json.RawMessage(tc.b)) {
			t.Errorf("%s and %s differ", tc.a, tc.b)
		}
	}
	if bus.CanonicalID(json.RawMessage(`"7"`)) == bus.CanonicalID(json.RawMessage(`7`)) {
		t.Error(`"7" and 7 are the same token`)
	}
	if requestProgressToken(json.RawMessage(`{"name":"x"}`)) != "" || requestProgressToken(json.RawMessage(`{"_meta":{"progressToken":"t"}}`)) != "s:t" {
		t.Error("requestProgressToken")
	}
}

func TestSSEMessageEndpointMustStayOnOrigin(t *testing.T) {
	hit := make(chan struct{}, 1)
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit <- struct{}{}
	}))
	defer foreign.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "event: endpoint\ndata: %s/message?sessionid=x\n\n", foreign.URL)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer func() {
		srv.CloseClientConnections()
		srv.Close()
	}()
	c := newSSEClient(ccServer, srv.URL+"/sse", nil, bus.LatestProtocolVersion, nil)
	defer c.Close()
	_, err := c.Info(ccCtx(t, 5*time.Second))
	if ccKind(err) != bus.ErrUpstreamProtocol || !strings.Contains(err.Error(), "another host") || strings.Contains(err.Error(), foreign.URL) {
		t.Errorf("err = %v", err)
	}
	select {
	case <-hit:
		t.Error("the foreign endpoint received a request")
	default:
	}
}
