package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// A session lives in the sessions bucket, so any ingress process serves it:
// a go-sdk client's session opened on one ingress takes a tools/call on
// another, and a DELETE there ends it on the first (its GET stream too).
func TestSessionAcrossIngressProcesses(t *testing.T) {
	url, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	first, second := replicaIngress(t, g), replicaIngress(t, g)

	cs, err := connect(t, first+"/mcp/demo", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	h := bearer(master)
	h.Set("Mcp-Session-Id", cs.ID())
	h.Set("Mcp-Protocol-Version", cs.InitializeResult().ProtocolVersion)
	r := post(t, second+"/mcp/demo", h, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"across"}}`))
	if r.status != http.StatusOK || !strings.Contains(string(r.result), `"across"`) {
		t.Fatalf("tools/call on the second ingress with the first's session: HTTP %d %s", r.status, r.body)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatalf("the client's own ingress: %v", err)
	}
	if r := post(t, second+"/mcp/other", h, rpc("ping", 3, "")); r.status != http.StatusNotFound {
		t.Fatalf("the session on another server's endpoint: HTTP %d %s", r.status, r.body)
	}

	// A raw session with a GET stream on the first ingress, ended by a
	// DELETE on the second.
	raw := initSession(t, first+"/mcp/demo", bearer(master))
	ended := openStream(t, first+"/mcp/demo", raw)

	for _, s := range []http.Header{h, raw} {
		req, _ := http.NewRequest(http.MethodDelete, second+"/mcp/demo", nil)
		req.Header = s.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("DELETE on the second ingress: %v %v", err, resp.Status)
		}
		resp.Body.Close()
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the GET stream on the first ingress outlived its session's DELETE on the second")
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err == nil {
		t.Fatal("the first ingress still serves a session deleted on the second")
	}
	if r := post(t, first+"/mcp/demo", raw, rpc("ping", 4, "")); r.status != http.StatusNotFound || r.rpcErr.Code != -32001 {
		t.Fatalf("after DELETE: HTTP %d %s, want 404 -32001", r.status, r.body)
	}
}

// openStream opens a session's GET stream and returns a channel closed when
// the stream ends.
func openStream(t *testing.T, url string, header http.Header) <-chan struct{} {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	req.Header = header.Clone()
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("GET stream: %v %v", err, resp)
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
		}
	}()
	return ended
}

// An older client on the legacy HTTP+SSE transport (go-sdk's
// SSEClientTransport) lists and calls tools through /sse/{server}, with
// progress relayed on its stream; without a key it is refused.
func TestLegacySSEClient(t *testing.T) {
	url, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	var mu sync.Mutex
	var progress []float64
	client := mcp.NewClient(&mcp.Implementation{Name: "legacy-test", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			progress = append(progress, r.Params.Progress)
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.SSEClientTransport{Endpoint: g.URL() + "/sse/demo", HTTPClient: &http.Client{Transport: headerTransport{bearer(master)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := ""
	for _, tl := range tools.Tools {
		names += tl.Name + " "
	}
	if !strings.Contains(names, "echo ") {
		t.Fatalf("tools over the legacy transport: %s", names)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "legacy"}})
	if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "legacy" {
		t.Fatalf("echo over the legacy transport: %v %+v", err, res)
	}
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"seconds": 0.2, "steps": 2}}
	params.SetProgressToken("legacy-progress")
	if _, err := cs.CallTool(ctx, params); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "2 progress notifications on the legacy stream", func() error {
		mu.Lock()
		defer mu.Unlock()
		return bustest.Want("progress notifications", len(progress), 2)
	})
	if _, err := connectLegacy(t, g.URL()+"/sse/demo", nil); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("legacy transport without a key: %v, want Unauthorized", err)
	}
}

// DNS rebinding: on a loopback listener a foreign Host or Origin is refused
// with 403 naming it and the setting to change; localhost ones pass.
func TestOriginAndHostThroughTheGateway(t *testing.T) {
	url, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	port := g.URL()[strings.LastIndex(g.URL(), ":")+1:]
	send := func(host, origin string) rawResponse {
		h := bearer(master)
		if origin != "" {
			h.Set("Origin", origin)
		}
		req, _ := http.NewRequest(http.MethodPost, g.URL()+"/mcp/demo", strings.NewReader(initBody))
		req.Host = host
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		return doRaw(t, req)
	}
	for _, c := range []struct {
		host, origin string
		status       int
		names        string
	}{
		{"evil.example.com", "http://evil.example.com", http.StatusForbidden, `Host "evil.example.com"`},
		{"127.0.0.1:" + port, "http://evil.example.com", http.StatusForbidden, `Origin "http://evil.example.com"`},
		{"localhost:" + port, "http://localhost:" + port, http.StatusOK, ""},
		{"127.0.0.1:" + port, "", http.StatusOK, ""},
	} {
		r := send(c.host, c.origin)
		if r.status != c.status {
			t.Errorf("Host %s Origin %q: HTTP %d %s, want %d", c.host, c.origin, r.status, r.body, c.status)
		}
		if c.names != "" && (r.rpcErr.Data["mcpbus_code"] != "MCPBUS_FORBIDDEN" || !strings.Contains(r.rpcErr.Message, c.names) ||
			!strings.Contains(r.rpcErr.Message, "mcp_allowed_origins")) {
			t.Errorf("Host %s Origin %q: %s, want a 403 naming %s and general_settings.mcp_allowed_origins", c.host, c.origin, r.body, c.names)
		}
	}
}
