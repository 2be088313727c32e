package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// relayUpstream is a go-sdk MCP server (Streamable HTTP on loopback) whose
// tools use what a gateway must relay: progress, sampling, elicitation, log
// messages, cancellation, and a tool list that changes.
type relayUpstream struct {
	name string
	srv  *mcp.Server
	url  string
	// started and cancelled report the slow tool's start and the end of its
	// context (the upstream got notifications/cancelled).
	started, cancelled chan struct{}
}

func newRelayUpstream(t *testing.T, name string) *relayUpstream {
	t.Helper()
	u := &relayUpstream{name: name, started: make(chan struct{}, 4), cancelled: make(chan struct{}, 4)}
	u.srv = mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	type none struct{}
	text := func(s string) *mcp.CallToolResult {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: s}}}
	}
	mcp.AddTool(u.srv, &mcp.Tool{Name: "whoami"}, func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
		return text(name), nil, nil
	})
	// sample reports progress, asks the client to sample, reports again.
	mcp.AddTool(u.srv, &mcp.Tool{Name: "sample"}, func(ctx context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
		progress := func(p float64) {
			if tok := req.Params.GetProgressToken(); tok != nil {
				_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: p, Total: 2, Message: name})
			}
		}
		progress(1)
		res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 16,
			Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "question from " + name}}}})
		if err != nil {
			return nil, nil, err
		}
		progress(2)
		return text(name + " sampled: " + res.Content.(*mcp.TextContent).Text), nil, nil
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "elicit"}, func(ctx context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
		res, err := req.Session.Elicit(ctx, &mcp.ElicitParams{Message: "your name?", RequestedSchema: map[string]any{
			"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}}})
		if err != nil {
			return nil, nil, err
		}
		return text(fmt.Sprintf("%s: %s %v", name, res.Action, res.Content["name"])), nil, nil
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "log"}, func(ctx context.Context, req *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
		for _, l := range []mcp.LoggingLevel{"debug", "info", "warning", "error"} {
			_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: l, Logger: name, Data: string(l) + " from " + name})
		}
		return text("logged"), nil, nil
	})
	mcp.AddTool(u.srv, &mcp.Tool{Name: "slow"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ none) (*mcp.CallToolResult, any, error) {
		u.started <- struct{}{}
		select {
		case <-ctx.Done():
			u.cancelled <- struct{}{}
			return nil, nil, ctx.Err()
		case <-time.After(30 * time.Second):
			return text("slept"), nil, nil
		}
	})
	u.url = serveMCP(t, u.srv, nil)
	return u
}

// serveMCP serves srv over Streamable HTTP on loopback until the test ends
// and returns its /mcp URL. The server ends the requests still open (the
// workers' GET streams and listens) when the test ends, before Close waits
// for them.
func serveMCP(t *testing.T, srv *mcp.Server, opts *mcp.StreamableHTTPOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	hs := httptest.NewUnstartedServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, opts))
	hs.Config.BaseContext = func(net.Listener) context.Context { return ctx }
	hs.Start()
	t.Cleanup(func() {
		cancel()
		hs.Close()
	})
	return hs.URL + "/mcp"
}

// relayGateway is a gateway in front of two relay upstreams, alpha and beta.
func relayGateway(t *testing.T) (*testGateway, *relayUpstream, *relayUpstream) {
	t.Helper()
	alpha, beta := newRelayUpstream(t, "alpha"), newRelayUpstream(t, "beta")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  alpha: {url: %q}
  beta: {url: %q}
`, master, alpha.url, beta.url), nil)
	return g, alpha, beta
}

// relayClient connects a go-sdk client with opts (its handlers declare its
// capabilities) through the gateway.
func relayClient(t *testing.T, endpoint string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return clientSpeaking(t, endpoint, opts, "")
}

// clientSpeaking is relayClient asking for protocol version ("": the
// go-sdk client's default, 2026-07-28).
func clientSpeaking(t *testing.T, endpoint string, opts *mcp.ClientOptions, version string) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "relay-test", Version: "1"}, opts).Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: headerTransport{bearer(master)}},
		MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

// relayCall calls a tool and returns its text; a tool error is an error.
func relayCall(ctx context.Context, cs *mcp.ClientSession, params *mcp.CallToolParams) (string, error) {
	res, err := cs.CallTool(ctx, params)
	if err != nil {
		return "", err
	}
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %s", strings.Join(parts, " "))
	}
	return strings.Join(parts, " "), nil
}

// progressLog collects progress notifications.
type progressLog struct {
	mu    sync.Mutex
	notes []*mcp.ProgressNotificationParams
}

func (p *progressLog) handler(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
	p.mu.Lock()
	p.notes = append(p.notes, r.Params)
	p.mu.Unlock()
}

func (p *progressLog) got() []*mcp.ProgressNotificationParams {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]*mcp.ProgressNotificationParams(nil), p.notes...)
}

// cancelSlowCall starts up's slow tool through cs, cancels the call once the
// tool runs, and fails the test unless the tool's context ends (the upstream
// was told to stop) long before the tool would finish; it returns the
// call's error.
func cancelSlowCall(t *testing.T, g *testGateway, cs *mcp.ClientSession, up *relayUpstream) error {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{}})
		done <- err
	}()
	select {
	case <-up.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the slow tool never started")
	}
	cancel()
	select {
	case <-up.cancelled:
	case <-time.After(30 * time.Second): // the tool would run 30 s: only a lost cancellation gets here
		t.Fatalf("the upstream tool was not cancelled after the client cancelled its call\n%s", g.logs.String())
	}
	return <-done
}
