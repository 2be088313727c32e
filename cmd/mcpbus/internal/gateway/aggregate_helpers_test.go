package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpgoserver "github.com/mark3labs/mcp-go/server"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Upstreams for the aggregation tests. Every answer names the upstream that
// gave it and the bare name it was asked for ("alpha/echo: hi"), so a test
// can tell where a call was routed and what name arrived there.

// serveGoSDK serves s over Streamable HTTP on 127.0.0.1.
func serveGoSDK(t *testing.T, s *mcp.Server) string {
	t.Helper()
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

// goSDKUpstream is a go-sdk server named name with the given tools and one
// prompt "greet", listing pageSize items per page. Its completions name it.
func goSDKUpstream(name string, pageSize int, tools ...string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{
		PageSize: pageSize,
		CompletionHandler: func(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
			ref := req.Params.Ref.Name + req.Params.Ref.URI
			return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{
				Values: []string{name + ":" + ref + ":" + req.Params.Argument.Name + "=" + req.Params.Argument.Value}}}, nil
		},
	})
	for _, tool := range tools {
		s.AddTool(&mcp.Tool{Name: tool, InputSchema: json.RawMessage(`{"type":"object","properties":{"text":{"type":"string"}}}`)},
			func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				var in struct{ Text string }
				json.Unmarshal(req.Params.Arguments, &in)
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name + "/" + req.Params.Name + ": " + in.Text}}}, nil
			})
	}
	s.AddPrompt(&mcp.Prompt{Name: "greet", Arguments: []*mcp.PromptArgument{{Name: "name"}}},
		func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user",
				Content: &mcp.TextContent{Text: name + "/" + req.Params.Name + ": " + req.Params.Arguments["name"]}}}}, nil
		})
	return s
}

// withResources adds a resource and a resource template to a go-sdk server.
func withResources(s *mcp.Server, name, uri, template string) *mcp.Server {
	read := func(_ context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: name + " read " + req.Params.URI}}}, nil
	}
	s.AddResource(&mcp.Resource{URI: uri, Name: "readme"}, read)
	s.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: template, Name: "item"}, read)
	return s
}

// serveHangingOnToolsList serves a go-sdk server that never answers
// tools/list (until the caller gives up or the test ends); everything else
// works.
func serveHangingOnToolsList(t *testing.T, s *mcp.Server) string {
	release := make(chan struct{})
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" {
				select {
				case <-ctx.Done():
					return nil, ctx.Err()
				case <-release:
					return nil, errors.New("test over")
				}
			}
			return next(ctx, method, req)
		}
	})
	url := serveGoSDK(t, s)
	t.Cleanup(func() { close(release) }) // runs before the server closes
	return url
}

// gammaUpstream is an mcp-go server (a second MCP implementation): tools
// search-docs, lookup and time, a resource, a template, a prompt, and
// completions, listing two items per page.
func gammaUpstream(t *testing.T) string {
	t.Helper()
	s := mcpgoserver.NewMCPServer("gamma", "1",
		mcpgoserver.WithPaginationLimit(2),
		mcpgoserver.WithCompletions(),
		mcpgoserver.WithPromptCompletionProvider(gammaCompletions{}),
		mcpgoserver.WithResourceCompletionProvider(gammaCompletions{}),
	)
	for _, tool := range []string{"search-docs", "lookup", "time"} {
		s.AddTool(mcpgo.NewTool(tool, mcpgo.WithDescription("gamma's "+tool), mcpgo.WithString("text")),
			func(_ context.Context, req mcpgo.CallToolRequest) (*mcpgo.CallToolResult, error) {
				return mcpgo.NewToolResultText("gamma/" + req.Params.Name + ": " + req.GetString("text", "")), nil
			})
	}
	read := func(_ context.Context, req mcpgo.ReadResourceRequest) ([]mcpgo.ResourceContents, error) {
		return []mcpgo.ResourceContents{mcpgo.TextResourceContents{URI: req.Params.URI, MIMEType: "text/plain", Text: "gamma read " + req.Params.URI}}, nil
	}
	s.AddResource(mcpgo.NewResource("gamma://index", "index"), read)
	s.AddResourceTemplate(mcpgo.NewResourceTemplate("gamma://docs/{name}", "doc"), read)
	s.AddPrompt(mcpgo.NewPrompt("summarize", mcpgo.WithArgument("topic")),
		func(_ context.Context, req mcpgo.GetPromptRequest) (*mcpgo.GetPromptResult, error) {
			return mcpgo.NewGetPromptResult("", []mcpgo.PromptMessage{
				mcpgo.NewPromptMessage(mcpgo.RoleUser, mcpgo.NewTextContent("gamma/"+req.Params.Name+": "+req.Params.Arguments["topic"])),
			}), nil
		})
	srv := httptest.NewServer(mcpgoserver.NewStreamableHTTPServer(s))
	t.Cleanup(srv.Close)
	return srv.URL + "/mcp"
}

type gammaCompletions struct{}

func (gammaCompletions) CompletePromptArgument(_ context.Context, prompt string, arg mcpgo.CompleteArgument, _ mcpgo.CompleteContext) (*mcpgo.Completion, error) {
	return &mcpgo.Completion{Values: []string{"gamma:" + prompt + ":" + arg.Name + "=" + arg.Value}}, nil
}

func (gammaCompletions) CompleteResourceArgument(_ context.Context, uri string, arg mcpgo.CompleteArgument, _ mcpgo.CompleteContext) (*mcpgo.Completion, error) {
	return &mcpgo.Completion{Values: []string{"gamma:" + uri + ":" + arg.Name + "=" + arg.Value}}, nil
}

// walkTools lists every page of tools through cs: the names in order, and how
// many pages it took.
func walkTools(t *testing.T, cs *mcp.ClientSession) ([]string, int, []*mcp.ListToolsResult) {
	t.Helper()
	var names []string
	var results []*mcp.ListToolsResult
	cursor := ""
	for pages := 1; ; pages++ {
		res, err := cs.ListTools(callCtx(t), &mcp.ListToolsParams{Cursor: cursor})
		if err != nil {
			t.Fatalf("tools/list page %d: %v", pages, err)
		}
		results = append(results, res)
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		if res.NextCursor == "" {
			return names, pages, results
		}
		if pages > 20 {
			t.Fatal("tools/list pages do not end")
		}
		cursor = res.NextCursor
	}
}

// callText calls a tool and returns its text, failing the test on an error.
func callText(t *testing.T, cs *mcp.ClientSession, name, text string) string {
	t.Helper()
	res, err := cs.CallTool(callCtx(t), &mcp.CallToolParams{Name: name, Arguments: map[string]any{"text": text}})
	if err != nil {
		t.Fatalf("tools/call %s: %v", name, err)
	}
	if res.IsError || len(res.Content) != 1 {
		t.Fatalf("tools/call %s: %+v", name, res)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

// rpcCode is the JSON-RPC error code of a client call's error (0 if none).
func rpcCode(err error) int {
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		return int(we.Code)
	}
	return 0
}

// callCtx bounds one client call generously: it turns a hang into a failure,
// and no answer on a loaded machine comes near it.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
