package demo

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// newLocalServer serves h on 127.0.0.1 only.
func newLocalServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// headerTransport adds fixed headers to every request.
type headerTransport struct{ header http.Header }

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range h.header {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

func connect(t *testing.T, url string, header http.Header, opts *mcp.ClientOptions) (*mcp.ClientSession, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "0"}, opts)
	tr := &mcp.StreamableClientTransport{
		Endpoint:   url,
		HTTPClient: &http.Client{Transport: headerTransport{header}},
		MaxRetries: -1,
	}
	cs, err := client.Connect(ctx, tr, nil)
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

func textOf(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("unexpected result %+v", res)
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T, want text", res.Content[0])
	}
	return tc.Text
}

func TestTools(t *testing.T) {
	srv := newLocalServer(t, Handler("demo"))
	cs, err := connect(t, srv.URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	if got := cs.InitializeResult().ServerInfo.Name; got != "demo" {
		t.Errorf("server name = %q, want demo", got)
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
	}
	if got := strings.Join(names, ","); got != "add,ask,echo,slow" {
		t.Errorf("tools = %s, want add,ask,echo,slow", got)
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi there"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, res); got != "hi there" {
		t.Errorf("echo = %q", got)
	}

	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 3.5}})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, res); got != "5.5" {
		t.Errorf("add text = %q, want 5.5", got)
	}
	raw, _ := json.Marshal(res.StructuredContent)
	if string(raw) != `{"sum":5.5}` {
		t.Errorf("add structuredContent = %s, want {\"sum\":5.5}", raw)
	}

	rr, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "demo://readme"})
	if err != nil || len(rr.Contents) != 1 || !strings.Contains(rr.Contents[0].Text, "echo") {
		t.Errorf("read demo://readme = %+v, %v", rr, err)
	}
	pr, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"name": "Ada"}})
	if err != nil || len(pr.Messages) != 1 || !strings.Contains(pr.Messages[0].Content.(*mcp.TextContent).Text, "Ada") {
		t.Errorf("get prompt greet = %+v, %v", pr, err)
	}
}

func TestSlowProgress(t *testing.T) {
	srv := newLocalServer(t, Handler("demo"))
	var mu sync.Mutex
	var progress []*mcp.ProgressNotificationParams
	cs, err := connect(t, srv.URL, nil, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, req.Params)
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"seconds": 0.3, "steps": 3}}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, res); got != "done after 0.3s" {
		t.Errorf("slow = %q", got)
	}
	// Notifications precede the response on the stream, but handlers run
	// asynchronously: wait for the third (the bound only catches a lost one).
	_ = bustest.Poll(30*time.Second, func() error { // checked below
		mu.Lock()
		defer mu.Unlock()
		return bustest.Want("progress notifications", len(progress), 3)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(progress) != 3 {
		t.Fatalf("got %d progress notifications, want 3", len(progress))
	}
	for _, p := range progress {
		if p.ProgressToken != "tok-1" || p.Total != 3 || p.Message == "" {
			t.Errorf("bad progress notification %+v", p)
		}
	}

	res, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"seconds": 31}})
	if err != nil || !res.IsError {
		t.Errorf("slow 31s: want a tool error, got %+v, %v", res, err)
	}
}

func TestRunRequireHeader(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	lines := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"--listen", "127.0.0.1:0", "--name", "guarded",
			"--require-header", "x-api-key: upstream-secret"}, lineWriter(lines), io.Discard)
	}()
	var line string
	select {
	case line = <-lines:
	case err := <-done:
		t.Fatalf("Run returned early: %v", err)
	case <-time.After(30 * time.Second): // only a server that never listens gets here
		t.Fatal("no listening line")
	}
	m := regexp.MustCompile(`^demo upstream "guarded" listening on (http://127\.0\.0\.1:\d+/mcp)\n$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("unexpected listening line %q", line)
	}
	url := m[1]

	// Plain HTTP: 401 with a JSON body.
	resp, err := http.Post(url, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || body["error"] == nil {
		t.Errorf("no header: status %d body %v, want 401 with error", resp.StatusCode, body)
	}

	for _, tc := range []struct {
		name   string
		header http.Header
		ok     bool
	}{
		{"missing", nil, false},
		{"wrong", http.Header{"X-Api-Key": {"nope"}}, false},
		{"right", http.Header{"X-Api-Key": {"upstream-secret"}}, true},
	} {
		cs, err := connect(t, url, tc.header, nil)
		if tc.ok {
			if err != nil {
				t.Errorf("%s key: connect: %v", tc.name, err)
				continue
			}
			res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "ok"}})
			if err != nil || textOf(t, res) != "ok" {
				t.Errorf("%s key: echo = %+v, %v", tc.name, res, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), "Unauthorized") {
			t.Errorf("%s key: connect error = %v, want Unauthorized", tc.name, err)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}

func TestRunRefusesRemote(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "example.com:0"} {
		err := Run(context.Background(), []string{"--listen", addr}, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--allow-remote") {
			t.Errorf("listen %q: err = %v, want refusal", addr, err)
		}
	}
}

type lineWriter chan string

func (w lineWriter) Write(p []byte) (int, error) {
	w <- string(p)
	return len(p), nil
}

// The benchmark's catalog upstreams: generated tools, and every list delayed.
// No clock: the delay is a channel the test holds, so the test sees that
// tools/list waits on it for ListLatency and that tools/call never does.
func TestHandlerWithExtraToolsAndListLatency(t *testing.T) {
	var mu sync.Mutex
	var waits []time.Duration       // what the middleware waited for, in order
	release := make(chan time.Time) // closed: the delay is over
	waiting := make(chan struct{}, 8)
	after := func(d time.Duration) <-chan time.Time {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		waiting <- struct{}{}
		return release
	}
	waited := func() []time.Duration {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Duration(nil), waits...)
	}
	srv := newLocalServer(t, HandlerWith("big", Options{ExtraTools: 50, ListLatency: 40 * time.Millisecond, after: after}))
	end := sync.OnceFunc(func() { close(release) })
	t.Cleanup(end) // before the server's Close, which waits for a held list
	cs, err := connect(t, srv.URL, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := waited(); len(w) != 0 {
		t.Fatalf("connecting waited %v, want no delay before a list", w)
	}
	ctx := context.Background()
	type listed struct {
		res *mcp.ListToolsResult
		err error
	}
	done := make(chan listed, 1)
	go func() {
		res, err := cs.ListTools(ctx, nil)
		done <- listed{res, err}
	}()
	select {
	case <-waiting:
	case l := <-done:
		t.Fatalf("tools/list answered (%v) without waiting for the injected latency", l.err)
	case <-time.After(30 * time.Second):
		t.Fatal("tools/list neither waited nor answered")
	}
	select {
	case l := <-done:
		t.Fatalf("tools/list answered (%v) while its delay was held", l.err)
	default:
	}
	end()
	l := <-done
	if l.err != nil {
		t.Fatal(l.err)
	}
	if w := waited(); len(w) != 1 || w[0] != 40*time.Millisecond {
		t.Errorf("tools/list waited %v, want once for the 40ms ListLatency", w)
	}
	if len(l.res.Tools) != 54 {
		t.Errorf("got %d tools, want the 4 demo tools + 50 generated", len(l.res.Tools))
	}
	out, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "tool_050", Arguments: map[string]any{"text": "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, out); got != "hi" {
		t.Errorf("tool_050 answered %q, want the echo", got)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatal(err)
	}
	if w := waited(); len(w) != 1 {
		t.Errorf("the delay was taken %d times: the latency must apply to lists only, not to tools/call", len(w))
	}
	if _, err := cs.ListPrompts(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if w := waited(); len(w) != 2 {
		t.Errorf("prompts/list took the delay %d times in all, want 2 (every list waits)", len(w))
	}
}
