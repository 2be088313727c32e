// Package demo is a small, real MCP server used as an upstream for demos and
// end-to-end tests of the mcpbus gateway. It is built with the official Go
// SDK and served over Streamable HTTP.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Limits and defaults of the slow tool.
const (
	slowDefaultSeconds = 2
	slowMaxSeconds     = 30
	slowDefaultSteps   = 5
	slowMaxSteps       = 1000
)

// EchoInput is the input of the echo tool.
type EchoInput struct {
	Text string `json:"text" jsonschema:"the text to echo back"`
}

// AddInput is the input of the add tool.
type AddInput struct {
	A float64 `json:"a" jsonschema:"first addend"`
	B float64 `json:"b" jsonschema:"second addend"`
}

// AddOutput is the structured output of the add tool.
type AddOutput struct {
	Sum float64 `json:"sum" jsonschema:"a + b"`
}

// SlowInput is the input of the slow tool. Zero values select the defaults.
type SlowInput struct {
	Seconds float64 `json:"seconds,omitempty" jsonschema:"how long to run, default 2, max 30"`
	Steps   int     `json:"steps,omitempty" jsonschema:"number of progress notifications, default 5"`
}

// NewServer returns an MCP server named name with the demo tools (echo, add,
// slow, ask), the resource demo://readme and the prompt greet.
func NewServer(name string) *mcp.Server { return newServer(name, nil) }

// newServer is NewServer with the SDK's server options.
func newServer(name string, opts *mcp.ServerOptions) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: version.Version}, opts)

	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echo the given text."}, echo)
	mcp.AddTool(s, &mcp.Tool{Name: "add", Description: "Add two numbers; returns the sum as text and as structured content."}, add)
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "Run for a while, reporting progress to the caller's progress token."}, slow)
	mcp.AddTool(s, &mcp.Tool{Name: "ask", Description: "Ask the caller for a name (elicitation), then greet it."}, ask)

	s.AddResource(&mcp.Resource{
		URI:         "demo://readme",
		Name:        "readme",
		Description: "About this demo server.",
		MIMEType:    "text/plain",
	}, func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{
			URI:      req.Params.URI,
			MIMEType: "text/plain",
			Text:     fmt.Sprintf("%s is an mcpbus demo upstream with the tools echo, add, slow and ask.\n", name),
		}}}, nil
	})

	s.AddPrompt(&mcp.Prompt{
		Name:        "greet",
		Description: "Greet someone by name.",
		Arguments:   []*mcp.PromptArgument{{Name: "name", Description: "who to greet", Required: true}},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		who := req.Params.Arguments["name"]
		if who == "" {
			who = "world"
		}
		return &mcp.GetPromptResult{
			Description: "A greeting",
			Messages: []*mcp.PromptMessage{{
				Role:    "user",
				Content: &mcp.TextContent{Text: "Say hello to " + who + "."},
			}},
		}, nil
	})
	return s
}

// Handler returns a Streamable HTTP handler serving NewServer(name).
func Handler(name string) http.Handler { return HandlerWith(name, Options{}) }

// Options shape a demo server for benchmarks.
type Options struct {
	// ExtraTools adds generated tools tool_001 ... (they echo like echo).
	ExtraTools int
	// ListLatency delays every list answer (tools, prompts, resources).
	ListLatency time.Duration
	// CallLatency delays every tools/call answer (a slow upstream, for the
	// worker-replica scaling benchmark).
	CallLatency time.Duration
	// Era: "" (sessions, 2025-11-25) or EraStateless.
	Era string
	// after is time.After (nil); a test holds the list delay with it.
	after func(time.Duration) <-chan time.Time
}

// Era is the revision a demo server speaks: "" for 2025-11-25 (and
// older) on sessions; EraStateless for MCP 2026-07-28 alone, with no
// session (a server of the new era, to show the gateway bridging).
const EraStateless = "2026-07-28"

// HandlerWith is Handler with Options.
func HandlerWith(name string, o Options) http.Handler {
	var opts *mcp.ServerOptions
	if o.Era == EraStateless {
		opts = &mcp.ServerOptions{SupportedProtocolVersions: []string{EraStateless}}
	}
	s := newServer(name, opts)
	for i := 1; i <= o.ExtraTools; i++ {
		mcp.AddTool(s, &mcp.Tool{Name: fmt.Sprintf("tool_%03d", i), Description: "A generated tool that echoes its text (catalog benchmarks)."}, echo)
	}
	if d := o.ListLatency; d > 0 {
		after := o.after
		if after == nil {
			after = time.After
		}
		s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
			return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
				if strings.HasSuffix(method, "/list") {
					select {
					case <-after(d):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				return next(ctx, method, req)
			}
		})
	}
	if d := o.CallLatency; d > 0 {
		s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
			return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
				if method == "tools/call" {
					select {
					case <-time.After(d):
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
				return next(ctx, method, req)
			}
		})
	}
	if o.Era == EraStateless {
		return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{Stateless: true})
	}
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
		&mcp.StreamableHTTPOptions{SessionTimeout: 10 * time.Minute})
}

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

func echo(_ context.Context, _ *mcp.CallToolRequest, in EchoInput) (*mcp.CallToolResult, any, error) {
	return textResult(in.Text), nil, nil
}

func add(_ context.Context, _ *mcp.CallToolRequest, in AddInput) (*mcp.CallToolResult, AddOutput, error) {
	out := AddOutput{Sum: in.A + in.B}
	return textResult(fmt.Sprint(out.Sum)), out, nil
}

func slow(ctx context.Context, req *mcp.CallToolRequest, in SlowInput) (*mcp.CallToolResult, any, error) {
	seconds, steps := in.Seconds, in.Steps
	if seconds <= 0 {
		seconds = slowDefaultSeconds
	}
	if seconds > slowMaxSeconds {
		return nil, nil, fmt.Errorf("seconds must be at most %d", slowMaxSeconds)
	}
	if steps <= 0 {
		steps = slowDefaultSteps
	}
	steps = min(steps, slowMaxSteps)

	token := req.Params.GetProgressToken()
	tick := time.Duration(seconds * float64(time.Second) / float64(steps))
	timer := time.NewTimer(tick)
	defer timer.Stop()
	for i := 1; i <= steps; i++ {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-timer.C:
			timer.Reset(tick)
		}
		if token != nil {
			err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token,
				Progress:      float64(i),
				Total:         float64(steps),
				Message:       fmt.Sprintf("step %d of %d", i, steps),
			})
			if err != nil {
				return nil, nil, fmt.Errorf("sending progress: %w", err)
			}
		}
	}
	return textResult(fmt.Sprintf("done after %gs", seconds)), nil, nil
}

// askSchema is what ask asks for.
var askSchema = json.RawMessage(`{"type":"object","properties":{"name":{"type":"string","description":"your name"}},"required":["name"]}`)

// ask asks its caller for a name by an input_required result (MCP
// 2026-07-28), and greets whoever answered on the retry. The SDK asks a
// 2025-11-25 caller on its session (elicitation/create) itself, so the tool
// is the same in both eras.
func ask(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
	r, ok := req.Params.InputResponses["name"].(*mcp.ElicitResult)
	if !ok || r == nil {
		return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{
			"name": &mcp.ElicitParams{Message: "What is your name?", RequestedSchema: askSchema}}}, nil, nil
	}
	if r.Action != "accept" {
		return textResult("no name given (" + r.Action + ")"), nil, nil
	}
	return textResult(fmt.Sprintf("hello, %v", r.Content["name"])), nil, nil
}
