package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Texts the conformance scenarios (and the fixture's tests) look for.
const (
	simpleText          = "This is a simple text response for testing."
	errorText           = "This tool intentionally returns an error for testing"
	embeddedResourceURI = "test://embedded-resource"
	embeddedText        = "This is an embedded resource content."
	mixedResourceURI    = "test://mixed-content-resource"
	mixedResourceJSON   = `{"test":"data","value":123}`
)

// stepDelay separates the log and progress messages of one tool call, so a
// client sees them arrive one by one while the call is in flight.
const stepDelay = 50 * time.Millisecond

// noInput is the input of the tools that take no arguments.
type noInput struct{}

// SamplingInput is the input of test_sampling.
type SamplingInput struct {
	Prompt string `json:"prompt" jsonschema:"the prompt to send to the client's LLM"`
}

// ElicitationInput is the input of test_elicitation.
type ElicitationInput struct {
	Message string `json:"message" jsonschema:"the message to show the user"`
}

func addTools(s *mcp.Server) {
	mcp.AddTool(s, &mcp.Tool{Name: "test_simple_text", Description: "Returns one text content block."}, simpleTextTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_image_content", Description: "Returns a 1x1 PNG image content block."}, imageTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_audio_content", Description: "Returns a short WAV audio content block."}, audioTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_embedded_resource", Description: "Returns an embedded text resource."}, embeddedResourceTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_multiple_content_types", Description: "Returns text, image and embedded resource content together."}, mixedContentTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_tool_with_logging", Description: "Sends three info log messages while it runs."}, loggingTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_tool_with_progress", Description: "Reports progress 0, 50 and 100 of 100 to the request's progress token."}, progressTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_error_handling", Description: "Always fails with a tool error (isError)."}, errorTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_sampling", Description: "Asks the client's LLM (sampling/createMessage) and returns its answer."}, samplingTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_elicitation", Description: "Asks the user for a username and email (elicitation/create) and returns the answer."}, elicitationTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_elicitation_sep1034_defaults", Description: "Elicitation whose schema gives a default for every primitive type (SEP-1034)."}, elicitDefaultsTool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_elicitation_sep1330_enums", Description: "Elicitation whose schema uses every enum variant (SEP-1330)."}, elicitEnumsTool)
	s.AddTool(&mcp.Tool{
		Name:        "json_schema_2020_12_tool",
		Description: "Has an input schema using JSON Schema 2020-12 keywords ($schema, $defs, $ref, additionalProperties).",
		InputSchema: schema202012,
	}, schema202012Tool)
	mcp.AddTool(s, &mcp.Tool{Name: "test_reconnection", Description: "Closes its SSE stream mid-call and answers after the client reconnects (SEP-1699)."}, reconnectionTool)
	s.AddTool(&mcp.Tool{
		Name:        "test_custom_headers",
		Description: "Its region parameter travels as the Mcp-Param-Region header too (SEP-2243, x-mcp-header).",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"region":{"type":"string","x-mcp-header":"Region"}},"required":["region"]}`),
	}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		var a struct {
			Region string `json:"region"`
		}
		_ = json.Unmarshal(req.Params.Arguments, &a)
		return textResult("routed to " + a.Region), nil
	})
}

// schema202012 is served verbatim by tools/list.
var schema202012 = json.RawMessage(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "$defs": {
    "address": {
      "type": "object",
      "properties": {
        "street": {"type": "string"},
        "city": {"type": "string"}
      }
    }
  },
  "properties": {
    "name": {"type": "string"},
    "address": {"$ref": "#/$defs/address"}
  },
  "additionalProperties": false
}`)

func textResult(text string) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}
}

func simpleTextTool(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	return textResult(simpleText), nil, nil
}

func imageTool(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: pngImage, MIMEType: "image/png"}}}, nil, nil
}

func audioTool(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.AudioContent{Data: wavAudio, MIMEType: "audio/wav"}}}, nil, nil
}

func embeddedResourceTool(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
		URI: embeddedResourceURI, MIMEType: "text/plain", Text: embeddedText,
	}}}}, nil, nil
}

func mixedContentTool(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{Content: []mcp.Content{
		&mcp.TextContent{Text: "Multiple content types test:"},
		&mcp.ImageContent{Data: pngImage, MIMEType: "image/png"},
		&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
			URI: mixedResourceURI, MIMEType: "application/json", Text: mixedResourceJSON,
		}},
	}}, nil, nil
}

// sleep waits d, or returns ctx's error if it ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// loggingTool sends three info messages, stepDelay apart. The go-sdk drops
// them unless the session asked for info or lower with logging/setLevel.
func loggingTool(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	for i, msg := range []string{"Tool execution started", "Tool processing data", "Tool execution completed"} {
		if i > 0 {
			if err := sleep(ctx, stepDelay); err != nil {
				return nil, nil, err
			}
		}
		err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Logger: Name, Data: msg})
		if err != nil {
			return nil, nil, fmt.Errorf("sending log message: %w", err)
		}
	}
	return textResult("Tool with logging executed successfully"), nil, nil
}

// progressTool reports 0, 50 and 100 of 100 when the request has a progress
// token, stepDelay apart; without one it only takes the same time.
func progressTool(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	token := req.Params.GetProgressToken()
	for i, p := range []float64{0, 50, 100} {
		if i > 0 {
			if err := sleep(ctx, stepDelay); err != nil {
				return nil, nil, err
			}
		}
		if token == nil {
			continue
		}
		err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
			ProgressToken: token, Progress: p, Total: 100, Message: fmt.Sprintf("%.0f%% done", p),
		})
		if err != nil {
			return nil, nil, fmt.Errorf("sending progress: %w", err)
		}
	}
	return textResult("Tool with progress executed successfully"), nil, nil
}

func errorTool(context.Context, *mcp.CallToolRequest, noInput) (*mcp.CallToolResult, any, error) {
	return nil, nil, errors.New(errorText)
}

// clientCaps returns the capabilities the session's client declared.
func clientCaps(ss *mcp.ServerSession) *mcp.ClientCapabilities {
	if p := ss.InitializeParams(); p != nil && p.Capabilities != nil {
		return p.Capabilities
	}
	return &mcp.ClientCapabilities{}
}

func samplingTool(ctx context.Context, req *mcp.CallToolRequest, in SamplingInput) (*mcp.CallToolResult, any, error) {
	if clientCaps(req.Session).Sampling == nil {
		return nil, nil, errors.New("test_sampling: the client did not declare the sampling capability")
	}
	res, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: in.Prompt}}},
		MaxTokens: 100,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("test_sampling: sampling/createMessage failed: %w", err)
	}
	answer := fmt.Sprintf("(%T content)", res.Content)
	if t, ok := res.Content.(*mcp.TextContent); ok {
		answer = t.Text
	}
	return textResult("LLM response: " + answer), nil, nil
}

func reconnectionTool(ctx context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if req.Extra != nil && req.Extra.CloseSSEStream != nil {
		req.Extra.CloseSSEStream(mcp.CloseSSEStreamArgs{RetryAfter: 100 * time.Millisecond})
	}
	if err := sleep(ctx, 300*time.Millisecond); err != nil {
		return nil, nil, err
	}
	return textResult("Reconnection test completed successfully"), nil, nil
}

func schema202012Tool(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
	args := string(req.Params.Arguments)
	if args == "" {
		args = "{}"
	}
	return textResult("json_schema_2020_12_tool called with " + args), nil
}
