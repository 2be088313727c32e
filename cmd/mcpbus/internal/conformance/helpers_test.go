package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serve runs a fresh fixture's Handler on 127.0.0.1 and returns it and its URL.
func serve(t *testing.T) (*Fixture, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := New()
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: f.Handler()}}
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv.URL
}

// legacyVersion is the protocol version of the session-era tests: the
// go-sdk client would otherwise speak 2026-07-28 (its latest), which the
// fixture now serves too (era_test.go).
const legacyVersion = "2025-11-25"

// connect opens a go-sdk client session to url over Streamable HTTP, in the
// session era (initialize, 2025-11-25).
func connect(t *testing.T, url string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	return connectVersion(t, url, legacyVersion, opts)
}

// connectVersion is connect with the protocol version to ask for: from
// 2026-07-28 on, the client discovers (server/discover) instead of
// initializing, and every request carries its own _meta.
func connectVersion(t *testing.T, url, version string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "fixture-test", Version: "0"}, opts)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func call(t *testing.T, cs *mcp.ClientSession, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, err := cs.CallTool(testCtx(t), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	return res
}

// onlyText returns the text of a successful result with one text block.
func onlyText(t *testing.T, res *mcp.CallToolResult) string {
	t.Helper()
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("want one content block and no error, got %s", mustJSON(t, res))
	}
	tc, ok := res.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content is %T, want text", res.Content[0])
	}
	return tc.Text
}

// waitFor polls cond under mu for up to 30 s (a bound only a lost
// notification reaches); the caller checks what arrived. The go-sdk client
// runs notification handlers concurrently with the call, so the last
// notification before a result may be handled just after the call returns.
func waitFor(mu *sync.Mutex, cond func() bool) {
	_ = bustest.Poll(30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
