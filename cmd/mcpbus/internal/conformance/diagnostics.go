package conformance

import (
	"context"
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The diagnostic tools of the server-stateless scenario (SEP-2575). Each
// works in both eras; the scenario calls them with 2026-07-28 requests.

// Names of the tools the triggers re-register.
const (
	triggerToolName   = "test_trigger_tool_change"
	triggerPromptName = "test_trigger_prompt_change"
	// triggeredPrompt is the prompt test_trigger_prompt_change re-registers.
	triggeredPrompt = "test_simple_prompt"
)

func (f *Fixture) addDiagnostics(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_missing_capability",
		Description: "Needs the sampling client capability: without it the call is -32021 MissingRequiredClientCapability naming {\"sampling\":{}}.",
	}, missingCapabilityTool)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_streaming_elicitation",
		Description: "Answers on the call's own response stream, which carries only that answer (and notifications), never a request to the client.",
	}, streamingElicitationTool)
	mcp.AddTool(s, &mcp.Tool{
		Name:        "test_logging_tool",
		Description: "Logs one info message; go-sdk sends it only when the request set _meta io.modelcontextprotocol/logLevel (or, on a legacy session, logging/setLevel).",
	}, loggingOnceTool)
	f.addTriggerTool()
	mcp.AddTool(s, &mcp.Tool{
		Name:        triggerPromptName,
		Description: "Re-registers the prompt " + triggeredPrompt + ", so the server sends notifications/prompts/list_changed.",
	}, f.triggerPromptChange)
}

func missingCapabilityTool(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if caps := req.ClientCapabilities(); caps != nil && caps.Sampling != nil {
		return textResult("The client declared the sampling capability."), nil, nil
	}
	// A *jsonrpc.Error from a tool handler is the call's JSON-RPC error (not a
	// tool error); go-sdk answers -32021 with HTTP 400 on a modern request.
	return nil, nil, &jsonrpc.Error{
		Code:    mcp.CodeMissingRequiredClientCapabilities,
		Message: "test_missing_capability: the client did not declare the sampling capability",
		Data:    missingSampling,
	}
}

// missingSampling is the -32021 data: requiredCapabilities is a
// ClientCapabilities object naming only what is missing. (Marshalling
// mcp.ClientCapabilities would add "roots":{}, its one non-pointer field.)
var missingSampling = json.RawMessage(`{"requiredCapabilities":{"sampling":{}}}`)

// streamingElicitationTool reports progress when asked to, then answers: in
// 2026-07-28 the response stream of a call carries notifications and its
// result, never a server-to-client request (an elicitation is an
// input_required result instead, see mrtr.go).
func streamingElicitationTool(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if token := req.Params.GetProgressToken(); token != nil {
		err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: token, Progress: 50, Total: 100})
		if err != nil {
			return nil, nil, err
		}
	}
	return textResult("Streaming complete: the response stream carried no request"), nil, nil
}

func loggingOnceTool(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: Name, Data: "test_logging_tool executed"}); err != nil {
		return nil, nil, err
	}
	return textResult("Logging evaluated"), nil, nil
}

// addTriggerTool registers test_trigger_tool_change; calling it registers
// it again. go-sdk sends notifications/tools/list_changed for every AddTool,
// a replacement included, to legacy sessions and to the subscriptions/listen
// streams that asked for it, and the list stays the same.
func (f *Fixture) addTriggerTool() {
	mcp.AddTool(f.server, &mcp.Tool{
		Name:        triggerToolName,
		Description: "Re-registers itself, so the server sends notifications/tools/list_changed.",
	}, f.triggerToolChange)
}

func (f *Fixture) triggerToolChange(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	f.addTriggerTool()
	return textResult("notifications/tools/list_changed published"), nil, nil
}

func (f *Fixture) triggerPromptChange(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	addSimplePrompt(f.server)
	return textResult("notifications/prompts/list_changed published"), nil, nil
}
