package router

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Tool search mode (docs/AGGREGATION.md#tool-search; bus/toolsearch.go says
// who is in it). For a caller with many tools, tools/list answers three
// tools instead of all of them: search_tools ranks every tool the caller may
// use for some words (toolindex.go), describe_tool gives one's whole
// definition, and call_tool calls one by name. call_tool's call is the
// tools/call the caller could have sent itself, on the same path (the name
// map, the worker: visibility, permissions, allowed_tools, pins, audit), so
// it is refused exactly as that would be. A tools/call of any other name is
// such a call too. Everything else is as without the mode.

const (
	toolSearchTools  = "search_tools"
	toolDescribeTool = "describe_tool"
	toolCallTool     = "call_tool"

	// defaultSearchLimit and maxSearchLimit bound search_tools' limit;
	// maxQueryLen its query.
	defaultSearchLimit = 10
	maxSearchLimit     = 50
	maxQueryLen        = 1024
)

// toolSearchNote ends initialize's (and server/discover's) instructions in
// tool search mode, so an agent knows why it sees three tools.
const toolSearchNote = "Tool search mode: this gateway lists three tools in place of all the tools you may use. " +
	"Find tools by words with search_tools, read one's parameters with describe_tool, and call it by name with call_tool."

// withSearchNote is instructions with toolSearchNote when env is in tool
// search mode.
func withSearchNote(env bus.Envelope, instructions string) string {
	switch {
	case !env.ToolSearch:
		return instructions
	case instructions == "":
		return toolSearchNote
	}
	return instructions + "\n\n" + toolSearchNote
}

// searchToolsList is tools/list's result in tool search mode.
var searchToolsList = json.RawMessage(`{"tools":[` +
	`{"name":"search_tools","title":"Search tools",` +
	`"description":"Search every tool you may use through this gateway by words: tool names, descriptions and parameters are matched (BM25), best match first. Then describe_tool gives a tool's parameters and call_tool runs it.",` +
	`"inputSchema":{"type":"object","properties":{` +
	`"query":{"type":"string","description":"Words saying what you want to do, e.g. \"create a github issue\"."},` +
	`"limit":{"type":"integer","minimum":1,"maximum":50,"default":10,"description":"How many tools to return, best first (default 10, at most 50)."}},` +
	`"required":["query"]},` +
	`"outputSchema":{"type":"object","properties":{` +
	`"tools":{"type":"array","items":{"type":"object","properties":{"name":{"type":"string"},"description":{"type":"string"},"score":{"type":"number"}},"required":["name","description","score"]}},` +
	`"total":{"type":"integer","description":"How many tools were searched."},` +
	`"unavailable":{"type":"array","items":{"type":"string"},"description":"Servers that could not be listed now."}},` +
	`"required":["tools","total"]},` +
	`"annotations":{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}},` +
	`{"name":"describe_tool","title":"Describe a tool",` +
	`"description":"The whole definition of one tool found with search_tools: its description, inputSchema (the arguments call_tool takes), outputSchema and annotations.",` +
	`"inputSchema":{"type":"object","properties":{"name":{"type":"string","description":"The tool's name, as search_tools gave it."}},"required":["name"]},` +
	`"annotations":{"readOnlyHint":true,"idempotentHint":true,"openWorldHint":false}},` +
	`{"name":"call_tool","title":"Call a tool",` +
	`"description":"Call one tool by name with its arguments; the answer is that tool's own result.",` +
	`"inputSchema":{"type":"object","properties":{` +
	`"name":{"type":"string","description":"The tool's name, as search_tools gave it."},` +
	`"arguments":{"type":"object","description":"The tool's arguments, as its inputSchema (describe_tool) says."}},` +
	`"required":["name"]}}` +
	`]}`)

// toolSearch answers tools/list and tools/call in tool search mode, for the
// servers the request resolved to: several (many), or one.
func (r *Router) toolSearch(ctx context.Context, h nats.Header, raw []byte, env bus.Envelope, msg *bus.Message, one bus.ServerSpec, many []bus.ServerSpec) ([]byte, *bus.Error) {
	if msg.Method == bus.MethodToolsList {
		return bus.ResultResponse(msg.ID, searchToolsList), nil
	}
	v := &searchView{}
	if many != nil {
		v.a = r.newAgg(env, h, raw, many)
	} else {
		v.a = r.newAgg(env, h, raw, []bus.ServerSpec{one})
		v.a.ns[0], v.bare = "", true
	}
	p, e := params(msg)
	if e != nil {
		return nil, e
	}
	switch stringParam(p, "name") {
	case toolSearchTools:
		return r.searchTools(ctx, v, msg, p)
	case toolDescribeTool:
		return r.describeTool(ctx, v, msg, p)
	case toolCallTool:
		return r.callTool(ctx, v, msg, p)
	}
	// A tool called by its own name: as without the mode.
	if v.bare {
		return r.forward(ctx, h, raw, env, one)
	}
	return r.callByName(ctx, v.a, msg, kindTools)
}

// toolArgs decodes a meta-tool's arguments (an object, or none).
func toolArgs(tool string, p map[string]json.RawMessage) (map[string]json.RawMessage, *bus.Error) {
	raw, ok := p["arguments"]
	if !ok || string(raw) == "null" {
		return map[string]json.RawMessage{}, nil
	}
	var args map[string]json.RawMessage
	if json.Unmarshal(raw, &args) != nil || args == nil {
		return nil, bus.Errorf(bus.ErrInvalidParams, "%s: arguments must be an object", tool)
	}
	return args, nil
}

// toolName reads a meta-tool's required string argument "name".
func toolName(tool string, args map[string]json.RawMessage) (string, *bus.Error) {
	var name string
	if json.Unmarshal(args["name"], &name) != nil || name == "" {
		return "", bus.Errorf(bus.ErrInvalidParams, "%s: arguments.name is required: the name of a tool, as search_tools gives it", tool)
	}
	return name, nil
}

func (r *Router) searchTools(ctx context.Context, v *searchView, msg *bus.Message, p map[string]json.RawMessage) ([]byte, *bus.Error) {
	args, e := toolArgs(toolSearchTools, p)
	if e != nil {
		return nil, e
	}
	var query string
	if json.Unmarshal(args["query"], &query) != nil || strings.TrimSpace(query) == "" {
		return nil, bus.Errorf(bus.ErrInvalidParams, "search_tools: arguments.query is required: words saying what you want to do")
	}
	if len(query) > maxQueryLen {
		return nil, bus.Errorf(bus.ErrInvalidParams, "search_tools: arguments.query is longer than %d bytes", maxQueryLen)
	}
	limit := defaultSearchLimit
	if raw, ok := args["limit"]; ok && string(raw) != "null" {
		var f float64
		if json.Unmarshal(raw, &f) != nil || f != float64(int(f)) || f < 1 || f > maxSearchLimit {
			return nil, bus.Errorf(bus.ErrInvalidParams, "search_tools: arguments.limit must be a whole number from 1 to %d", maxSearchLimit)
		}
		limit = int(f)
	}
	t := r.index(ctx, v, false)
	hits := t.search(query, limit)
	var text strings.Builder
	if len(hits) == 0 {
		fmt.Fprintf(&text, "No tool matches %q (%d tools searched)%s.", query, t.ix.Len(), t.missingNote())
	} else {
		fmt.Fprintf(&text, "%d best of the %d tools for %q%s:\n", len(hits), t.ix.Len(), query, t.missingNote())
		for i, h := range hits {
			fmt.Fprintf(&text, "%d. %s (score %.3f): %s\n", i+1, h.Name, h.Score, h.Description)
		}
		text.WriteString("describe_tool gives a tool's parameters; call_tool runs it.")
	}
	structured := map[string]any{"tools": hits, "total": t.ix.Len()}
	if len(t.missing) > 0 {
		structured["unavailable"] = t.missing
	}
	return bus.ResultResponse(msg.ID, marshal(map[string]any{
		"content":           []any{map[string]string{"type": "text", "text": text.String()}},
		"structuredContent": structured,
	})), nil
}

func (r *Router) describeTool(ctx context.Context, v *searchView, msg *bus.Message, p map[string]json.RawMessage) ([]byte, *bus.Error) {
	args, e := toolArgs(toolDescribeTool, p)
	if e != nil {
		return nil, e
	}
	name, e := toolName(toolDescribeTool, args)
	if e != nil {
		return nil, e
	}
	def, ok := r.index(ctx, v, false).definition(name)
	if !ok {
		t := r.index(ctx, v, true) // a tool added since: look once more
		if def, ok = t.definition(name); !ok {
			return nil, unknown("tool", name, t.missing)
		}
	}
	return bus.ResultResponse(msg.ID, marshal(map[string]any{
		"content":           []any{map[string]string{"type": "text", "text": string(def)}},
		"structuredContent": def,
	})), nil
}

// callTool calls the tool call_tool names: the caller's params with its name
// and arguments, so everything else (_meta with a progress token, a 2026-07-28
// requestState) goes with the call as it came.
func (r *Router) callTool(ctx context.Context, v *searchView, msg *bus.Message, p map[string]json.RawMessage) ([]byte, *bus.Error) {
	args, e := toolArgs(toolCallTool, p)
	if e != nil {
		return nil, e
	}
	name, e := toolName(toolCallTool, args)
	if e != nil {
		return nil, e
	}
	p["name"], _ = json.Marshal(name)
	delete(p, "arguments")
	if raw, ok := args["arguments"]; ok && string(raw) != "null" {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			return nil, bus.Errorf(bus.ErrInvalidParams, "call_tool: arguments.arguments must be an object: the arguments of tool %q", name)
		}
		p["arguments"] = raw
	}
	if v.bare {
		return r.forward(ctx, v.a.h, requestBody(msg.ID, bus.MethodToolsCall, marshal(p)), v.a.env, v.a.servers[0])
	}
	return r.callNamed(ctx, v.a, &bus.Message{ID: msg.ID, Method: bus.MethodToolsCall}, kindTools, p, name)
}
