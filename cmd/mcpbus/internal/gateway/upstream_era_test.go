package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/toolworkers/upstream/upstreamtest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Upstreams of MCP 2026-07-28 (stateless go-sdk servers) behind the
// gateway: the worker finds their era with server/discover and calls them
// with no session, for clients of either era (plan:
// docs/plans/mcp-2026-07-28.md, step 5).

// modernUpstream is a stateless go-sdk v1.8.0 server that records the
// JSON-RPC methods it receives.
type modernUpstream struct {
	url string
	srv *mcp.Server
	// listening is closed when the server first acknowledges a
	// subscriptions/listen: from then on it tells of its list changes.
	listening chan struct{}
	once      sync.Once
	mu        sync.Mutex
	methods   []string
}

func (u *modernUpstream) saw() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.methods)
}

// newModernUpstream serves the stateless era alone, or, with dual, both
// eras as a dual-era server does: a request with MCP-Protocol-Version
// 2026-07-28 statelessly, any other on a session.
func newModernUpstream(t *testing.T, name string, dual bool) *modernUpstream {
	t.Helper()
	u := &modernUpstream{listening: make(chan struct{})}
	opts := &mcp.ServerOptions{SupportedProtocolVersions: []string{"2026-07-28"}}
	if dual {
		opts = nil
	}
	srv := mcp.NewServer(&mcp.Implementation{Name: name, Version: "2"}, opts)
	u.srv = srv
	type none struct{}
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami"}, func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
		return text(name), nil, nil
	})
	// greet asks for a name with an input_required result (SEP-2322), then
	// greets whoever answered.
	mcp.AddTool(srv, &mcp.Tool{Name: "greet"}, func(_ context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
		if r, ok := req.Params.InputResponses["who"].(*mcp.ElicitResult); ok && r != nil && r.Action == "accept" {
			return text(fmt.Sprintf("%s greets %v", name, r.Content["name"])), nil, nil
		}
		return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"who": &mcp.ElicitParams{Message: "your name?",
			RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`)}}}, nil, nil
	})
	// survey asks in two rounds, keeping the first answer in requestState;
	// the second round also asks for the client's roots.
	mcp.AddTool(srv, &mcp.Tool{Name: "survey"}, func(_ context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
		p := req.Params
		if p.RequestState == "" {
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"color": &mcp.ElicitParams{Message: "colour?",
				RequestedSchema: json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}}}`)}}, RequestState: "round1"}, nil, nil
		}
		color, _ := p.InputResponses["color"].(*mcp.ElicitResult)
		if p.RequestState == "round1" && color != nil {
			return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"roots": &mcp.ListRootsParams{}},
				RequestState: "round2:" + fmt.Sprint(color.Content["name"])}, nil, nil
		}
		roots, _ := p.InputResponses["roots"].(*mcp.ListRootsResult)
		if after, ok := strings.CutPrefix(p.RequestState, "round2:"); ok && roots != nil && len(roots.Roots) > 0 {
			return text(after + " at " + roots.Roots[0].URI), nil, nil
		}
		return nil, nil, fmt.Errorf("survey: unexpected round %q", p.RequestState)
	})
	srv.AddTool(&mcp.Tool{Name: "route", InputSchema: json.RawMessage(`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}}}`)},
		func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return text("routed"), nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "log"}, func(ctx context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
		for _, l := range []mcp.LoggingLevel{"debug", "info", "warning"} {
			_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: l, Logger: name, Data: string(l) + " from " + name})
		}
		return text("logged"), nil, nil
	})
	modern := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	legacy := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if dual && r.Header.Get("Mcp-Protocol-Version") < "2026-07-28" {
			legacy.ServeHTTP(w, r)
			return
		}
		modern.ServeHTTP(w, r)
	})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var m struct{ Method string }
		_ = json.Unmarshal(body, &m)
		u.mu.Lock()
		u.methods = append(u.methods, r.Method+" "+m.Method)
		u.mu.Unlock()
		if m.Method == "subscriptions/listen" {
			upstreamtest.AckWatch(h, func() { u.once.Do(func() { close(u.listening) }) }).ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(hs.Close)
	u.url = hs.URL + "/mcp"
	return u
}

// eraGateway serves a 2026-07-28 upstream "nova" (of both eras with dual)
// beside a session-era one ("alpha"), with the stateless protocol on for
// clients when stateless.
func eraGateway(t *testing.T, stateless, dual bool) (*testGateway, *modernUpstream) {
	t.Helper()
	nova, alpha := newModernUpstream(t, "nova", dual), newRelayUpstream(t, "alpha")
	return startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_stateless_protocol: %t}
mcp_servers:
  nova: {url: %q}
  alpha: {url: %q}
`, master, stateless, nova.url, alpha.url), nil), nova
}

// A 2026-07-28 client in front of a 2026-07-28 upstream: calls pass
// through with no session on either side, and the upstream's
// input_required result reaches the client, whose retry (with its
// inputResponses) reaches the upstream.
func TestModernUpstreamForAModernClient(t *testing.T) {
	g, nova := eraGateway(t, true, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	asked := 0
	opts := &mcp.ClientOptions{ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
		asked++
		return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
	}}
	for _, c := range []struct{ endpoint, tool, want string }{
		{"/mcp/nova", "whoami", "nova"},
		{"/mcp/nova", "greet", "nova greets Ada"},
		{"/mcp", "nova__greet", "nova greets Ada"},
		{"/mcp", "alpha__whoami", "alpha"},
	} {
		cs := modernClient(t, g.URL()+c.endpoint, opts)
		got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: c.tool, Arguments: map[string]any{}})
		if err != nil || got != c.want {
			t.Fatalf("%s on %s: %q %v, want %q", c.tool, c.endpoint, got, err, c.want)
		}
	}
	if asked != 2 {
		t.Errorf("the client was asked for input %d times, want 2 (once per greet)", asked)
	}
	saw := nova.saw()
	if slices.Contains(saw, "POST initialize") || slices.ContainsFunc(saw, func(s string) bool { return !strings.HasPrefix(s, "POST ") }) {
		t.Fatalf("the stateless upstream was sent %v: want POSTs only, no initialize", saw)
	}
	if n := sessionCount(t, g); n != 0 {
		t.Errorf("the gateway holds %d sessions, want none", n)
	}
}

// A 2025-11-25 client keeps its session, in front of an upstream of the
// stateless era alone: lists, calls and the session's log level, which the
// worker sends in each request's _meta.
func TestModernUpstreamForASessionClient(t *testing.T) {
	g, nova := eraGateway(t, false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	logs := make(chan string, 16)
	cs := relayClient(t, g.URL()+"/mcp/nova", &mcp.ClientOptions{LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
		logs <- fmt.Sprint(r.Params.Data)
	}})
	if cs.ID() == "" {
		t.Fatal("the session-era client got no session")
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || len(tools.Tools) != 5 {
		t.Fatalf("tools/list: %v %v", tools, err)
	}
	if got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil || got != "nova" {
		t.Fatalf("whoami: %q %v", got, err)
	}
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: "log", Arguments: map[string]any{}}); err != nil || got != "logged" {
		t.Fatalf("log: %q %v", got, err)
	}
	var got []string
	for len(got) < 2 {
		select {
		case m := <-logs:
			got = append(got, m)
		case <-ctx.Done():
			t.Fatalf("log messages at level info: got %v, want info and warning", got)
		}
	}
	if slices.Contains(got, "debug from nova") {
		t.Errorf("a debug message passed the session's info level: %v", got)
	}
	if saw := nova.saw(); slices.Contains(saw, "POST initialize") || slices.Contains(saw, "POST logging/setLevel") {
		t.Fatalf("the stateless upstream was sent %v: no initialize, no logging/setLevel", saw)
	}
}

// In front of a server of both eras, each client is served in its own: a
// 2025-11-25 client on an upstream session, where the server asks it for
// input with elicitation/create as before; a 2026-07-28 client statelessly,
// where the server asks with input_required. Both get greeted.
func TestDualEraUpstreamServesEachClientInItsEra(t *testing.T) {
	g, nova := eraGateway(t, true, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	answer := func(who string) *mcp.ClientOptions {
		return &mcp.ClientOptions{ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": who}}, nil
		}}
	}
	legacy := sessionEraClient(t, g.URL()+"/mcp/nova", answer("Grace"))
	if legacy.ID() == "" {
		t.Fatal("the 2025-11-25 client got no session")
	}
	modern := modernClient(t, g.URL()+"/mcp/nova", answer("Ada"))
	for cs, want := range map[*mcp.ClientSession]string{legacy: "nova greets Grace", modern: "nova greets Ada"} {
		if got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{}}); err != nil || got != want {
			t.Fatalf("greet: %q %v, want %q", got, err, want)
		}
	}
	saw := nova.saw()
	if !slices.Contains(saw, "POST initialize") || !slices.Contains(saw, "POST server/discover") {
		t.Fatalf("the upstream saw %v: want a session for one client and discover for the other", saw)
	}
}

// sessionEraClient connects a go-sdk client that speaks 2025-11-25 (an
// initialize and a session) even where the gateway speaks 2026-07-28.
func sessionEraClient(t *testing.T, endpoint string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return clientSpeaking(t, endpoint, opts, "2025-11-25")
}

// A 2025-11-25 client in front of an upstream of the stateless era alone:
// the upstream asks for input by its answer (input_required), the worker
// asks the client on its call's stream (elicitation/create, roots/list) and
// calls again with the answers and the upstream's requestState, round
// after round, until the result. The client never sees input_required: a
// 2025-11-25 client cannot read it (the go-sdk one happens to, so what
// reaches it on the wire is what the test checks).
func TestSessionClientAnswersAStatelessUpstreamsInputRequests(t *testing.T) {
	g, _ := eraGateway(t, false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var asked []string
	var mu sync.Mutex
	note := func(s string) { mu.Lock(); asked = append(asked, s); mu.Unlock() }
	client := mcp.NewClient(&mcp.Implementation{Name: "era-test", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			note("elicit " + req.Params.Message)
			answer := "Grace"
			if req.Params.Message == "colour?" {
				answer = "teal"
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": answer}}, nil
		},
	})
	client.AddRoots(&mcp.Root{URI: "file:///work", Name: "work"})
	wire := &wireLog{next: headerTransport{bearer(master)}}
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint: g.URL() + "/mcp/nova", HTTPClient: &http.Client{Transport: wire}, MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	for tool, want := range map[string]string{"greet": "nova greets Grace", "survey": "teal at file:///work"} {
		if got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}}); err != nil || got != want {
			t.Fatalf("%s: %q %v, want %q", tool, got, err, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || asked[0] == asked[1] {
		t.Fatalf("the client was asked %v, want your name? and colour? once each", asked)
	}
	got := wire.String()
	if strings.Contains(got, "input_required") || !strings.Contains(got, `"method":"elicitation/create"`) || !strings.Contains(got, `"method":"roots/list"`) {
		t.Fatalf("the 2025-11-25 client was sent input_required, or no elicitation/create and roots/list requests:\n%s", got)
	}

	// A client that cannot answer (no elicitation capability) gets the
	// reason, not a result it cannot read.
	plain := sessionEraClient(t, g.URL()+"/mcp/nova", nil)
	res, err := plain.CallTool(ctx, &mcp.CallToolParams{Name: "greet", Arguments: map[string]any{}})
	if err == nil && (res == nil || !res.IsError) {
		t.Fatalf("greet without the elicitation capability answered %+v", res)
	}
	if err != nil && !strings.Contains(err.Error(), "elicitation") {
		t.Fatalf("greet without the elicitation capability: %v, want a reason naming elicitation", err)
	}
}

// wireLog is a client transport that keeps every response body it reads.
type wireLog struct {
	next http.RoundTripper
	mu   sync.Mutex
	buf  bytes.Buffer
}

func (w *wireLog) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(r)
	if err == nil {
		resp.Body = &teeBody{ReadCloser: resp.Body, w: w}
	}
	return resp, err
}

func (w *wireLog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

type teeBody struct {
	io.ReadCloser
	w *wireLog
}

func (b *teeBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.w.mu.Lock()
	b.w.buf.Write(p[:n])
	b.w.mu.Unlock()
	return n, err
}
