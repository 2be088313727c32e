package demo

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// connectSpeaking connects a go-sdk client asking for version ("": its
// default, 2026-07-28) that answers elicitations with the name Ada.
func connectSpeaking(t *testing.T, url, version string) (*mcp.ClientSession, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "demo-test", Version: "0"}, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		}})
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url, HTTPClient: http.DefaultClient, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err == nil {
		t.Cleanup(func() { cs.Close() })
	}
	return cs, err
}

// ask greets whoever answers its elicitation, asked by input_required of a
// 2026-07-28 client and on the session of a 2025-11-25 one; the
// stateless-era demo serves only the former, with no session.
func TestAskInBothEras(t *testing.T) {
	sessions := newLocalServer(t, Handler("old"))
	stateless := newLocalServer(t, HandlerWith("new", Options{Era: EraStateless}))
	for _, c := range []struct {
		url, version, wantVersion string
		wantSession               bool
	}{
		{sessions.URL, "2025-11-25", "2025-11-25", true},
		{stateless.URL, "", EraStateless, false},
	} {
		cs, err := connectSpeaking(t, c.url, c.version)
		if err != nil {
			t.Fatalf("%s asking for %q: %v", c.url, c.version, err)
		}
		if v := cs.InitializeResult().ProtocolVersion; v != c.wantVersion || (cs.ID() != "") != c.wantSession {
			t.Fatalf("%s: version %s, session %q; want %s, a session: %v", c.url, v, cs.ID(), c.wantVersion, c.wantSession)
		}
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "ask", Arguments: map[string]any{}})
		if err != nil {
			t.Fatal(err)
		}
		if got := textOf(t, res); got != "hello, Ada" {
			t.Fatalf("%s: ask answered %q", c.version, got)
		}
	}
	if _, err := connectSpeaking(t, stateless.URL, "2025-11-25"); err == nil {
		t.Fatal("a 2025-11-25 client opened a session on the stateless-era demo")
	}
}
