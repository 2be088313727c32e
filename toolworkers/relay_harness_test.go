package toolworkers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
	"github.com/prometheus/client_golang/prometheus"
)

// The harness of the relay tests: a real go-sdk MCP server upstream (Streamable
// HTTP on loopback) that records what reaches it, a worker on a real embedded
// NATS server, and the ingress's and router's parts played on the bus by the
// test: stream subjects that acknowledge, answers published to the
// server-to-client reply subjects, cancel requests, closed sessions.

const relayServer = "up"

// upSeen is one HTTP request the upstream received.
type upSeen struct {
	method string // HTTP method
	header http.Header
	msg    bus.Message
}

// relayUpstream is the go-sdk server and its request log.
type relayUpstream struct {
	srv *mcp.Server
	url string

	mu        sync.Mutex
	seen      []upSeen
	subs      []string // resources/subscribe URIs the server's handler got
	unsubs    []string
	rootsNote int // notifications/roots/list_changed the server got
	later     chan string
	// listHold, if set, holds tools/list answers until it is closed (so
	// concurrent calls overlap).
	listHold chan struct{}
	// noGET answers GET with 405, as a server without a GET stream.
	noGET bool
	// getsOpen counts GET streams whose response has begun (the server
	// attaches the stream before anything else can be written to it).
	getsOpen int
}

func textOf(r *mcp.CallToolResult) string {
	var parts []string
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}

func text(s string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
}

type noArgs struct{}

func newRelayUpstream(t *testing.T) *relayUpstream {
	t.Helper()
	u := &relayUpstream{later: make(chan string, 4)}
	u.srv = mcp.NewServer(&mcp.Implementation{Name: "relay-upstream", Version: "1"}, &mcp.ServerOptions{
		SubscribeHandler: func(_ context.Context, r *mcp.SubscribeRequest) error {
			u.mu.Lock()
			u.subs = append(u.subs, r.Params.URI)
			u.mu.Unlock()
			return nil
		},
		UnsubscribeHandler: func(_ context.Context, r *mcp.UnsubscribeRequest) error {
			u.mu.Lock()
			u.unsubs = append(u.unsubs, r.Params.URI)
			u.mu.Unlock()
			return nil
		},
		RootsListChangedHandler: func(context.Context, *mcp.RootsListChangedRequest) {
			u.mu.Lock()
			u.rootsNote++
			u.mu.Unlock()
		},
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return text(in.Text), nil, nil
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
			Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "say hi"}}}})
		if err != nil {
			return nil, nil, err
		}
		return text("sampled: " + res.Content.(*mcp.TextContent).Text), nil, nil
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "elicit"}, func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: "your name?", RequestedSchema: map[string]any{
			"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, err
		}
		return text(fmt.Sprintf("%s %v", res.Action, res.Content["name"])), nil, nil
	})
	// rootsLater asks for the roots outside the request, as a server does
	// when it learns something later: the request goes on the GET stream.
	mcp.AddTool(u.srv, &mcp.Tool{Name: "rootsLater"}, func(_ context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		ss := req.Session
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := ss.ListRoots(ctx, nil)
			if err != nil {
				u.later <- "error: " + err.Error()
				return
			}
			var names []string
			for _, r := range res.Roots {
				names = append(names, r.URI)
			}
			u.later <- strings.Join(names, ",")
		}()
		return text("asked"), nil, nil
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(20 * time.Second):
			return text("slept"), nil, nil
		}
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "log"}, func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		for _, l := range []mcp.LoggingLevel{"debug", "info", "warning", "error"} {
			_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: l, Data: "at " + string(l)})
		}
		return text("logged"), nil, nil
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "progress"}, func(ctx context.Context, req *mcp.CallToolRequest, _ noArgs) (*mcp.CallToolResult, any, error) {
		if tok := req.Params.GetProgressToken(); tok != nil {
			for i := 1; i <= 2; i++ {
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i), Total: 2})
			}
		}
		return text("done"), nil, nil
	})
	u.srv.AddResource(&mcp.Resource{URI: "test://r1", Name: "r1"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: "test://r1", Text: "one"}}}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return u.srv }, nil)
	srv := streamingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := upSeen{method: r.Method, header: r.Header.Clone()}
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			_ = json.Unmarshal(body, &s.msg)
		}
		u.mu.Lock()
		u.seen = append(u.seen, s)
		hold, noGET := u.listHold, u.noGET
		u.mu.Unlock()
		if r.Method == http.MethodGet && noGET {
			http.Error(w, "no GET stream here", http.StatusMethodNotAllowed)
			return
		}
		if s.msg.Method == "tools/list" && hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
			}
		}
		if r.Method == http.MethodGet {
			w = &getWriter{ResponseWriter: w, began: func() {
				u.mu.Lock()
				u.getsOpen++
				u.mu.Unlock()
			}}
		}
		h.ServeHTTP(w, r)
	}))
	u.url = srv.URL + "/mcp"
	return u
}

// getWriter reports the first write of a GET response: the go-sdk server
// writes it while it attaches the stream, holding the stream's lock, so what
// the server sends after that goes on this stream.
type getWriter struct {
	http.ResponseWriter
	once  sync.Once
	began func()
}

func (g *getWriter) Write(p []byte) (int, error) {
	n, err := g.ResponseWriter.Write(p)
	g.once.Do(g.began)
	return n, err
}

func (g *getWriter) Flush() {
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (g *getWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

func (u *relayUpstream) openGETs() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.getsOpen
}

// requests returns what the upstream received with JSON-RPC method m ("GET"
// and "DELETE" for those HTTP requests; "response" for POSTed responses).
func (u *relayUpstream) requests(m string) []upSeen {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []upSeen
	for _, s := range u.seen {
		switch {
		case s.method == m,
			s.method == http.MethodPost && s.msg.Method == m,
			m == "response" && s.method == http.MethodPost && s.msg.IsResponse():
			out = append(out, s)
		}
	}
	return out
}

func (u *relayUpstream) count(m string) int { return len(u.requests(m)) }

// relayEnv is a worker for the upstream on a real NATS server, and a second
// connection playing the router and the ingress.
type relayEnv struct {
	nc      *nats.Conn
	w       *Worker
	up      *relayUpstream
	logs    *bustest.Buffer
	metrics *Metrics
}

func newRelayEnv(t *testing.T, up *relayUpstream) *relayEnv {
	t.Helper()
	e := newRelayEnvURL(t, up.url)
	e.up = up
	return e
}

// newRelayEnvURL is a worker for the upstream at url.
func newRelayEnvURL(t *testing.T, url string) *relayEnv {
	t.Helper()
	ns := bustest.Server(t)
	e := &relayEnv{nc: bustest.Conn(t, ns), logs: &bustest.Buffer{}}
	// The usage stream, so usage events are stored (and Stop does not wait
	// for publishes nobody acknowledges).
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bus.UsageStream(t.Context(), js, bus.UsageStreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e.metrics, err = NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e.w, err = Start(bustest.Conn(t, ns), bus.ServerSpec{Name: relayServer, URL: url, Timeout: "10s"},
		Options{Log: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})), Metrics: e.metrics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.w.Stop)
	if err := e.w.nc.Flush(); err != nil { // the endpoints are subscribed
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("worker log:\n%s", e.logs.String())
		}
	})
	return e
}

// caller is a downstream client as the envelope describes it.
func caller(session, key, caps string) bus.Envelope {
	env := bus.Envelope{RequestID: nuid.Next(), Session: session, Caller: bus.Identity{KeyID: key, Permissions: bus.Permissions{AllServers: true}},
		IPClass: bus.Internal, ProtocolVersion: "2025-06-18"}
	if caps != "" {
		env.ClientCapabilities = json.RawMessage(caps)
	}
	return env
}

// rpcAnswer is the worker's answer to one request.
type rpcAnswer struct {
	raw    []byte
	gwErr  *bus.Error // a gateway error (micro error headers)
	result json.RawMessage
	rpcErr *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
}

// request sends one JSON-RPC request to the worker as the router does.
func (e *relayEnv) request(t *testing.T, env bus.Envelope, method, params string, id int) rpcAnswer {
	t.Helper()
	env.RequestID = nuid.Next()
	body := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q`, id, method)
	if params != "" {
		body += `,"params":` + params
	}
	body += "}"
	m, err := e.nc.RequestMsg(&nats.Msg{Subject: bus.ToolRPC(relayServer), Header: env.Header(), Data: []byte(body)}, 15*time.Second)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	a := rpcAnswer{raw: m.Data, gwErr: bus.ReplyError(m)}
	if a.gwErr != nil {
		return a
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("%s: answer is not JSON-RPC: %s", method, m.Data)
	}
	a.result, a.rpcErr = r.Result, r.Error
	return a
}

// toolText calls a tool and returns its text, failing on any error.
func (e *relayEnv) toolText(t *testing.T, env bus.Envelope, tool string) string {
	t.Helper()
	a := e.request(t, env, "tools/call", fmt.Sprintf(`{"name":%q,"arguments":{}}`, tool), 1)
	if a.gwErr != nil || a.rpcErr != nil {
		t.Fatalf("tools/call %s: %s %v", tool, a.raw, a.gwErr)
	}
	var r mcp.CallToolResult
	if err := json.Unmarshal(a.result, &r); err != nil {
		t.Fatal(err)
	}
	if r.IsError {
		return "tool error: " + textOf(&r)
	}
	return textOf(&r)
}

// clientStream plays the ingress side of one stream subject (a POST's or a
// session's): it acknowledges requests, hands every message to the test, and
// answers requests with answer (if set) as the router would publish them.
type clientStream struct {
	subject string
	msgs    chan bus.Message
}

func (e *relayEnv) clientStream(t *testing.T, subject string, answer func(req bus.Message) (env bus.Envelope, body string, ok bool)) *clientStream {
	t.Helper()
	cs := &clientStream{subject: subject, msgs: make(chan bus.Message, 64)}
	// A worker sends under its server's name (bus.ClientSubject), which the
	// ingress checks the stream's caller against.
	sub, err := e.nc.Subscribe(bus.ClientSubject(subject, "*"), func(m *nats.Msg) {
		if sender := bus.SenderOf(m.Subject); sender != relayServer {
			t.Errorf("a message for a client came as %q, want the worker's server %q", sender, relayServer)
		}
		var msg bus.Message
		_ = json.Unmarshal(m.Data, &msg)
		if m.Reply != "" {
			_ = m.Respond(nil) // written to the client's stream
		}
		cs.msgs <- msg
		if msg.IsRequest() && answer != nil {
			go func() {
				env, body, ok := answer(msg)
				if !ok {
					return
				}
				subj, valid := bus.ServerRequestReplySubject(msg.ID)
				if !valid {
					t.Errorf("server-to-client request id %s names no way back", msg.ID)
					return
				}
				_ = e.nc.PublishMsg(&nats.Msg{Subject: subj, Header: env.Header(), Data: []byte(body)})
			}()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return cs
}

func newStreamSubject() string { return bus.StreamSubject("ingress1", nuid.Next()) }

// next returns the next message on the stream with method m.
func (cs *clientStream) next(t *testing.T, m string, within time.Duration) bus.Message {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case msg := <-cs.msgs:
			if msg.Method == m {
				return msg
			}
		case <-deadline:
			t.Fatalf("no %s on %s within %s", m, cs.subject, within)
		}
	}
}

// drain returns what arrived on the stream so far.
func (cs *clientStream) drain() []bus.Message {
	var out []bus.Message
	for {
		select {
		case m := <-cs.msgs:
			out = append(out, m)
		default:
			return out
		}
	}
}

// response is a JSON-RPC response body to a relayed request.
func response(id json.RawMessage, result string) string {
	return `{"jsonrpc":"2.0","id":` + string(id) + `,"result":` + result + `}`
}

var errNoMsg = errors.New("no message")

// subscribeChan collects what is published on subject.
func (e *relayEnv) subscribeChan(t *testing.T, subject string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 64)
	sub, err := e.nc.ChanSubscribe(subject, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	_ = e.nc.Flush()
	return ch
}

func recv(ch chan *nats.Msg, d time.Duration) (*nats.Msg, error) {
	select {
	case m := <-ch:
		return m, nil
	case <-time.After(d):
		return nil, errNoMsg
	}
}

// openGETStream opens the upstream session the client's calls use and waits
// until a GET stream is attached (tests with one upstream session) (the upstream sends what belongs to no
// request only there).
func (e *relayEnv) openGETStream(t *testing.T, client bus.Envelope) {
	t.Helper()
	e.toolText(t, client, "echo")
	bustest.Eventually(t, 30*time.Second, "the GET stream is attached", func() error { return bustest.AtLeast("open GET streams", e.up.openGETs(), 1) })
}

// endUpstreamSession ends, behind the worker's back, the upstream session
// that the first request of method used (as an upstream that restarts does),
// waits until the worker notices it is gone, and returns its id.
func (e *relayEnv) endUpstreamSession(t *testing.T, method string) string {
	t.Helper()
	sid := e.up.requests(method)[0].header.Get("Mcp-Session-Id")
	lostBefore := int(e.w.shared.lost.Load())
	req, _ := http.NewRequest(http.MethodDelete, e.up.url, nil)
	req.Header.Set("Mcp-Session-Id", sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	bustest.Eventually(t, 30*time.Second, "the worker notices the upstream ended its session", func() error {
		return bustest.AtLeast("upstream sessions lost", int(e.w.shared.lost.Load()), lostBefore+1)
	})
	return sid
}
