// Command e2eclient is the official Go SDK's MCP client (go-sdk v1.8.0,
// which speaks MCP 2026-07-28 first) as a process, for the end-to-end tests
// in e2e/, which drive it beside the TypeScript SDK client against one
// running gateway. It connects, calls one tool and prints one JSON line:
// the protocol version it speaks, its session id (none in 2026-07-28), the
// tool's text, and the elicitation it answered, if one came.
//
//	e2eclient -endpoint http://127.0.0.1:4000/mcp/new -key sk-... -tool ask -answer Ada
//
// It is built by `make e2e` into bin/; it is not part of the mcpbus binary.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

type outcome struct {
	ProtocolVersion string `json:"protocolVersion"`
	Session         string `json:"session"`
	Text            string `json:"text"`
	IsError         bool   `json:"isError"`
	Elicited        string `json:"elicited,omitempty"`
}

func main() {
	endpoint := flag.String("endpoint", "", "the MCP endpoint (loopback)")
	key := flag.String("key", "", "the gateway key (else $MCPBUS_KEY)")
	tool := flag.String("tool", "", "the tool to call")
	args := flag.String("args", "{}", "the tool's arguments, a JSON object")
	answer := flag.String("answer", "", "the name to give when asked (elicitation); empty declines")
	version := flag.String("version", "", "the protocol version to ask for (empty: the SDK's default, 2026-07-28)")
	flag.Parse()
	if err := run(*endpoint, *key, *tool, *args, *answer, *version); err != nil {
		fmt.Fprintln(os.Stderr, "e2eclient:", err)
		os.Exit(1)
	}
}

func run(endpoint, key, tool, args, answer, version string) error {
	if !strings.HasPrefix(endpoint, "http://127.0.0.1:") && !strings.HasPrefix(endpoint, "http://localhost:") {
		return fmt.Errorf("-endpoint %q: want a loopback http URL", endpoint)
	}
	if key == "" {
		key = os.Getenv("MCPBUS_KEY")
	}
	var arguments map[string]any
	if err := json.Unmarshal([]byte(args), &arguments); err != nil {
		return fmt.Errorf("-args: %v", err)
	}
	var mu sync.Mutex
	var out outcome
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpbus-e2e-go", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			out.Elicited = req.Params.Message
			mu.Unlock()
			if answer == "" {
				return &mcp.ElicitResult{Action: "decline"}, nil
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": answer}}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{Transport: bearer{key}}, MaxRetries: -1},
		&mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: arguments})
	if err != nil {
		return fmt.Errorf("tools/call %s: %w", tool, err)
	}
	mu.Lock()
	defer mu.Unlock()
	out.ProtocolVersion, out.Session, out.IsError = cs.InitializeResult().ProtocolVersion, cs.ID(), res.IsError
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			out.Text += t.Text
		}
	}
	return json.NewEncoder(os.Stdout).Encode(out)
}
