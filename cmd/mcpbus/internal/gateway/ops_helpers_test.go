package gateway

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// opsUpstream is an in-process go-sdk Streamable HTTP server: "who" answers
// its name; "hold" signals held and answers once release is called.
type opsUpstream struct {
	url     string
	held    chan struct{}
	release func()
}

func newOpsUpstream(t *testing.T, name string) *opsUpstream {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	u := &opsUpstream{held: make(chan struct{}, 1)}
	released := make(chan struct{})
	u.release = sync.OnceFunc(func() { close(released) })
	mcp.AddTool(s, &mcp.Tool{Name: "who"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "hold"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		u.held <- struct{}{}
		select {
		case <-released:
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "held"}}}, nil, nil
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	t.Cleanup(u.release) // before Close, which waits for a held call
	u.url = srv.URL + "/mcp"
	return u
}

// opsCall calls tool on cs and returns its first text, or the error.
func opsCall(cs *mcp.ClientSession, tool string) (string, error) {
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: map[string]any{}})
	if err != nil {
		return "", err
	}
	if len(res.Content) == 0 {
		return "", nil
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); ok {
		return tc.Text, nil
	}
	return "", nil
}
