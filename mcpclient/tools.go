// Package mcpclient runs an MCP session's tools with an OpenAI model: the
// Go counterpart of LiteLLM's Python experimental_mcp_client. Tools lists
// the session's tools as OpenAI function tools (following every page); Call
// runs one of the model's tool calls on the session; ToolMessage is the
// answer to put back in the conversation. The session is any go-sdk client
// session, typically one to mcpbus's /mcp (every tool the key may use) or
// /mcp/{server}; the types are the official openai-go SDK's, so the tools go
// straight into a chat completions request.
package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
)

// Tools lists every tool of cs as an OpenAI function tool: its name, its
// description ("" if none) and its input schema as the parameters (an
// object schema with properties, as OpenAI wants, when the tool gives less).
func Tools(ctx context.Context, cs *mcp.ClientSession) ([]openai.ChatCompletionToolUnionParam, error) {
	var out []openai.ChatCompletionToolUnionParam
	for tool, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("mcpclient: listing tools: %w", err)
		}
		params, err := parameters(tool.InputSchema)
		if err != nil {
			return nil, fmt.Errorf("mcpclient: tool %q: %w", tool.Name, err)
		}
		def := shared.FunctionDefinitionParam{Name: tool.Name, Parameters: params}
		if tool.Description != "" {
			def.Description = openai.String(tool.Description)
		}
		out = append(out, openai.ChatCompletionFunctionTool(def))
	}
	return out, nil
}

// parameters is an MCP input schema as OpenAI function parameters.
func parameters(schema any) (shared.FunctionParameters, error) {
	p := shared.FunctionParameters{}
	if schema != nil {
		raw, err := json.Marshal(schema)
		if err != nil {
			return nil, fmt.Errorf("input schema: %w", err)
		}
		if string(raw) != "null" {
			if err := json.Unmarshal(raw, &p); err != nil {
				return nil, errors.New("input schema is not a JSON object")
			}
		}
	}
	if _, ok := p["type"]; !ok {
		p["type"] = "object"
	}
	if _, ok := p["properties"]; !ok && p["type"] == "object" {
		p["properties"] = map[string]any{}
	}
	return p, nil
}

// Call runs the model's tool call on cs: the tool it names with its
// arguments (a JSON object; none is {}). A tool that fails answers a result
// with IsError set, not an error: the model should see it. An error means
// the call could not be made (unknown tool, arguments that are not JSON,
// the session failed).
func Call(ctx context.Context, cs *mcp.ClientSession, call openai.ChatCompletionMessageToolCallUnion) (*mcp.CallToolResult, error) {
	if call.Type != "" && call.Type != "function" {
		return nil, fmt.Errorf("mcpclient: tool call %s is of type %q; only function calls name MCP tools", call.ID, call.Type)
	}
	args := map[string]any{}
	if a := strings.TrimSpace(call.Function.Arguments); a != "" {
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			return nil, fmt.Errorf("mcpclient: tool call %s (%s): arguments are not a JSON object: %w", call.ID, call.Function.Name, err)
		}
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: call.Function.Name, Arguments: args})
	if err != nil {
		return nil, fmt.Errorf("mcpclient: calling %s: %w", call.Function.Name, err)
	}
	return res, nil
}

// ToolMessage is res as the tool message answering call: its text content
// joined (structured content as JSON when there is no text), prefixed
// "error: " when the tool failed.
func ToolMessage(call openai.ChatCompletionMessageToolCallUnion, res *mcp.CallToolResult) openai.ChatCompletionMessageParamUnion {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	text := strings.Join(parts, "\n")
	if text == "" && res.StructuredContent != nil {
		if raw, err := json.Marshal(res.StructuredContent); err == nil {
			text = string(raw)
		}
	}
	if res.IsError {
		text = "error: " + text
	}
	return openai.ToolMessage(text, call.ID)
}
