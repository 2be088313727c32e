package llmrouter

import (
	"encoding/json"
	"strconv"

	"github.com/mcpbus/mcpbus/bus"
)

// The Responses API's request, made into chat completions messages and
// tools (responses.go runs them). mcpbus keeps no responses: a
// conversation goes on by sending its items in input, not by
// previous_response_id.

type respRequest struct {
	Model              string            `json:"model"`
	Input              json.RawMessage   `json:"input"`
	Instructions       string            `json:"instructions"`
	Tools              []json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	MaxOutputTokens    *int              `json:"max_output_tokens"`
	MaxToolCalls       *int              `json:"max_tool_calls"`
	Temperature        *float64          `json:"temperature"`
	TopP               *float64          `json:"top_p"`
	ParallelToolCalls  *bool             `json:"parallel_tool_calls"`
	Stream             bool              `json:"stream"`
	PreviousResponseID string            `json:"previous_response_id"`
	Metadata           json.RawMessage   `json:"metadata"`
	User               string            `json:"user"`
}

// chatMessage is one chat completions message.
type chatMessage struct {
	Role       string     `json:"role"`
	Content    any        `json:"content"`
	ToolCalls  []toolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

func newToolCall(id, name, args string) toolCall {
	tc := toolCall{ID: id, Type: "function"}
	tc.Function.Name, tc.Function.Arguments = name, args
	return tc
}

// inputItem is one item of input, the members mcpbus reads.
type inputItem struct {
	Type              string          `json:"type"`
	Role              string          `json:"role"`
	Content           json.RawMessage `json:"content"`
	CallID            string          `json:"call_id"`
	Name              string          `json:"name"`
	Arguments         string          `json:"arguments"`
	Output            json.RawMessage `json:"output"`
	ServerLabel       string          `json:"server_label"`
	ApprovalRequestID string          `json:"approval_request_id"`
	Approve           bool            `json:"approve"`
	ID                string          `json:"id"`
	Error             json.RawMessage `json:"error"`
}

// approval is an approval response found in input, to run.
type approval struct {
	requestID string
	approve   bool
}

// chatInput makes the conversation of a request: instructions as the
// system message, then input's items; approval responses are returned to
// run (responses.go), in order.
func chatInput(req respRequest) ([]chatMessage, []approval, *bus.Error) {
	var msgs []chatMessage
	if req.Instructions != "" {
		msgs = append(msgs, chatMessage{Role: "system", Content: req.Instructions})
	}
	var s string
	if json.Unmarshal(req.Input, &s) == nil {
		return append(msgs, chatMessage{Role: "user", Content: s}), nil, nil
	}
	var items []inputItem
	if err := json.Unmarshal(req.Input, &items); err != nil {
		return nil, nil, bus.Errorf(bus.ErrBadRequest, "input: a string or a list of items")
	}
	var approvals []approval
	for i, it := range items {
		at := "input[" + strconv.Itoa(i) + "]"
		switch it.Type {
		case "message", "":
			text, e := itemText(it.Content, at)
			if e != nil {
				return nil, nil, e
			}
			role := it.Role
			switch role {
			case "user", "assistant", "system":
			case "developer":
				role = "system"
			default:
				return nil, nil, bus.Errorf(bus.ErrBadRequest, "%s.role: %q is not user, assistant, system or developer", at, bus.Shorten(role, 32))
			}
			msgs = append(msgs, chatMessage{Role: role, Content: text})
		case "function_call", "mcp_call":
			id := it.CallID
			if it.Type == "mcp_call" {
				id = it.ID
			}
			msgs = appendCall(msgs, newToolCall(id, it.Name, it.Arguments))
			if it.Type == "mcp_call" {
				var out string
				_ = json.Unmarshal(it.Output, &out)
				msgs = append(msgs, chatMessage{Role: "tool", ToolCallID: id, Content: out})
			}
		case "function_call_output":
			var out string
			if json.Unmarshal(it.Output, &out) != nil {
				out = string(it.Output)
			}
			msgs = append(msgs, chatMessage{Role: "tool", ToolCallID: it.CallID, Content: out})
		case "mcp_approval_response":
			if it.ApprovalRequestID == "" {
				return nil, nil, bus.Errorf(bus.ErrBadRequest, "%s.approval_request_id: required", at)
			}
			approvals = append(approvals, approval{requestID: it.ApprovalRequestID, approve: it.Approve})
		case "mcp_approval_request", "mcp_list_tools", "reasoning":
			// What an earlier answer said: the approval response carries
			// the request; the tools are listed again.
		default:
			return nil, nil, bus.Errorf(bus.ErrBadRequest, "%s.type: %q is not served (message, function_call, function_call_output, mcp_call, mcp_approval_request, mcp_approval_response, mcp_list_tools)", at, bus.Shorten(it.Type, 48))
		}
	}
	return msgs, approvals, nil
}

// appendCall adds a tool call to the assistant message that ends msgs, or
// a new one.
func appendCall[M chatMessage | any](msgs []M, tc toolCall) []M {
	if n := len(msgs); n > 0 {
		if last, ok := any(msgs[n-1]).(chatMessage); ok && last.Role == "assistant" && len(last.ToolCalls) > 0 {
			last.ToolCalls = append(last.ToolCalls, tc)
			msgs[n-1] = any(last).(M)
			return msgs
		}
	}
	return append(msgs, any(chatMessage{Role: "assistant", ToolCalls: []toolCall{tc}}).(M))
}

// itemText is a message item's text: a string, or its text parts.
func itemText(raw json.RawMessage, at string) (string, *bus.Error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", bus.Errorf(bus.ErrBadRequest, "%s.content: a string or a list of parts", at)
	}
	var out string
	for j, p := range parts {
		switch p.Type {
		case "input_text", "output_text", "text":
			out += p.Text
		default:
			return "", bus.Errorf(bus.ErrBadRequest, "%s.content[%d].type: %q is not served (input_text, output_text)", at, j, bus.Shorten(p.Type, 32))
		}
	}
	return out, nil
}

// functionTool is a Responses function tool as a chat completions tool.
func functionTool(raw json.RawMessage, i int) (map[string]any, *bus.Error) {
	var t struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
		Strict      *bool           `json:"strict"`
	}
	if json.Unmarshal(raw, &t) != nil || t.Name == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, "tools[%d]: a function tool needs a name", i)
	}
	fn := map[string]any{"name": t.Name}
	if t.Description != "" {
		fn["description"] = t.Description
	}
	if len(t.Parameters) > 0 {
		fn["parameters"] = t.Parameters
	}
	if t.Strict != nil {
		fn["strict"] = *t.Strict
	}
	return map[string]any{"type": "function", "function": fn}, nil
}
