package llmrouter

import (
	"context"
	"encoding/json"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// POST /v1/responses: OpenAI's Responses API over the model group's
// deployments, which mcpbus speaks chat completions to. The request is
// made into chat messages and tools (responses_input.go); MCP tools of
// this gateway (mcp_tools.go) are listed for the caller and offered to the
// model as function tools; each call the model makes of one runs through
// the MCP router with the caller's envelope, unless require_approval asks
// for the caller's approval first, and its result goes back to the model,
// for at most max_tool_calls calls (DefaultMaxToolCalls). The answer has
// OpenAI's output items: mcp_list_tools, mcp_call, mcp_approval_request,
// function_call (the caller's own tools), message. With "stream": true
// the events of that answer are sent as the work goes: the tool items as
// they happen, a message's text in one delta.

// opResponses names the Responses API in usage events.
const opResponses = "responses"

// DefaultMaxToolCalls bounds the MCP tool calls of one response when the
// request sets no max_tool_calls.
const DefaultMaxToolCalls = 8

// approvalBucket binds a sealed approval request (bus.SecretKey) to its
// purpose; the key it is sealed with is the caller's key id.
const approvalBucket = "llm-mcp-approval"

// respRun is one response being made.
type respRun struct {
	r      *Router
	env    bus.Envelope
	req    respRequest
	g      *group
	hdr    nats.Header
	id     string
	start  time.Time
	mcps   []*mcpTool
	byName map[string]*mcpTool // offered function name -> its MCP tool
	tools  []any               // chat tools: the caller's functions, then MCP tools
	msgs   []any               // chatMessage, or a chat request's own messages as they came
	output []map[string]any
	events *respEvents // nil: not streaming
	calls  int

	prompt, completion int
	deployment         string
	status             string
	incomplete         string

	// chat: the run answers /v1/chat/completions (chat_mcp.go): extra are
	// the request's other members, last the model's last answer.
	chat  bool
	extra map[string]json.RawMessage
	last  []byte
}

func (r *Router) responses(env bus.Envelope, hdr nats.Header, body []byte, reply bus.Reply) {
	run := &respRun{r: r, env: env, hdr: maps.Clone(hdr), id: "resp_" + nuid.Next(), start: time.Now(), byName: map[string]*mcpTool{}, status: "completed"}
	run.hdr.Set(bus.HeaderLLMOp, bus.LLMOpChat)
	if err := json.Unmarshal(body, &run.req); err != nil {
		_ = reply.Error(bus.Errorf(bus.ErrBadRequest, "the request body is not a Responses API request: %s", bus.Shorten(err.Error(), 200)))
		return
	}
	if run.req.Model == "" {
		_ = reply.Error(bus.Errorf(bus.ErrBadRequest, "model: required, the name of a model group (GET /v1/models lists them)"))
		return
	}
	if run.req.PreviousResponseID != "" {
		_ = reply.Error(bus.Errorf(bus.ErrBadRequest, "previous_response_id: mcpbus keeps no responses; send the conversation's items (with any mcp_approval_response) in input"))
		return
	}
	g, e := r.group(env, run.req.Model)
	if e != nil {
		_ = reply.Error(e)
		return
	}
	run.g = g
	ctx, cancel := context.WithDeadline(context.Background(), deadline(env))
	defer cancel()
	if e := r.admit(ctx, env, g.info.Name); e != nil {
		_ = reply.Error(e)
		return
	}
	if run.req.Stream {
		if env.Stream == "" {
			_ = reply.Error(bus.Errorf(bus.ErrBadRequest, "a streaming request came without a stream to send its events to"))
			return
		}
		run.events = &respEvents{nc: r.nc, to: bus.ClientSubject(env.Stream, bus.LLMSender)}
	}
	fail := run.make(ctx, hdr.Get(bus.HeaderLLMBase))
	out := &nats.Msg{Header: nats.Header{bus.HeaderLLMDeployment: {run.deployment}, bus.HeaderLLMUsage: {bus.FormatLLMUsage(run.prompt, run.completion)}}}
	switch {
	case fail != nil && run.events != nil && run.events.sent:
		run.events.failed(run.response("failed", fail))
		reply.Msg(nil, nats.Header{bus.HeaderLLMStreamed: {"true"}})
	case fail != nil:
		_ = reply.Error(fail)
	case run.events != nil:
		run.events.completed(run.response(run.status, nil))
		reply.Msg(nil, nats.Header{bus.HeaderLLMStreamed: {"true"}})
	default:
		b, _ := json.Marshal(run.response(run.status, nil))
		out.Data = b
		reply.Msg(b, nats.Header{bus.HeaderLLMModel: {g.info.Name}, bus.HeaderLLMDeployment: {run.deployment}})
	}
	r.record(env, g.info.Name, opResponses, run.start, len(body), out, fail)
}

// make runs the conversation to its answer.
func (run *respRun) make(ctx context.Context, base string) *bus.Error {
	req := run.req
	if run.events != nil {
		run.events.created(run.response("in_progress", nil))
	}
	for i, raw := range req.Tools {
		var t struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &t)
		switch t.Type {
		case "function":
			ft, e := functionTool(raw, i)
			if e != nil {
				return e
			}
			run.tools = append(run.tools, ft)
		case "mcp":
			m, e := readMCPTool(raw, i, base)
			if e != nil {
				return e
			}
			run.mcps = append(run.mcps, m)
		default:
			return bus.Errorf(bus.ErrBadRequest, "tools[%d].type: %q is not served (function, mcp)", i, bus.Shorten(t.Type, 48))
		}
	}
	run.listMCP(ctx)
	msgs, approvals, e := chatInput(req)
	if e != nil {
		return e
	}
	for _, m := range msgs {
		run.msgs = append(run.msgs, m)
	}
	for _, a := range approvals {
		if e := run.approved(ctx, a); e != nil {
			return e
		}
	}
	return run.loop(ctx)
}

// listMCP lists each MCP tool's tools for the caller, offers them to the
// model, and records the listings as mcp_list_tools items.
func (run *respRun) listMCP(ctx context.Context) {
	for _, m := range run.mcps {
		item := map[string]any{"id": "mcpl_" + nuid.Next(), "type": "mcp_list_tools", "server_label": m.Label}
		if e := run.r.list(ctx, run.env, m); e != nil {
			item["error"] = e.Message
		}
		tools := []listedTool{}
		for _, t := range m.tools {
			tools = append(tools, t)
			if _, dup := run.byName[t.Name]; !dup {
				run.byName[t.Name] = m
				fn := map[string]any{"name": t.Name, "parameters": t.InputSchema}
				if t.Description != "" {
					fn["description"] = t.Description
				}
				run.tools = append(run.tools, map[string]any{"type": "function", "function": fn})
			}
		}
		item["tools"] = tools
		run.add(item)
	}
}

// loop asks the model and runs its MCP tool calls until it answers, asks
// for an approval or one of the caller's own functions, or max_tool_calls
// are spent.
func (run *respRun) loop(ctx context.Context) *bus.Error {
	req := run.req
	max := DefaultMaxToolCalls
	if req.MaxToolCalls != nil && *req.MaxToolCalls >= 0 {
		max = *req.MaxToolCalls
	}
	for {
		answer, e := run.complete(ctx)
		if e != nil {
			return e
		}
		if len(answer.ToolCalls) == 0 {
			run.add(map[string]any{"id": "msg_" + nuid.Next(), "type": "message", "role": "assistant", "status": "completed",
				"content": []any{map[string]any{"type": "output_text", "text": answer.Content, "annotations": []any{}}}})
			return nil
		}
		stop := false
		var ran []toolCall
		var results []any
		for _, tc := range answer.ToolCalls {
			m := run.byName[tc.Function.Name]
			switch {
			case m == nil: // the caller's own function
				run.add(map[string]any{"id": "fc_" + nuid.Next(), "type": "function_call", "call_id": tc.ID, "name": tc.Function.Name,
					"arguments": tc.Function.Arguments, "status": "completed"})
				stop = true
			case m.approval.needs(tc.Function.Name) && run.chat:
				return bus.Errorf(bus.ErrBadRequest, "tool %s needs the caller's approval (require_approval), which /v1/chat/completions cannot ask for: set require_approval never, or use /v1/responses", tc.Function.Name)
			case m.approval.needs(tc.Function.Name):
				id, e := run.sealApproval(m, tc.Function.Name, tc.Function.Arguments)
				if e != nil {
					return e
				}
				run.add(map[string]any{"id": id, "type": "mcp_approval_request", "server_label": m.Label, "name": tc.Function.Name, "arguments": tc.Function.Arguments})
				stop = true
			case run.calls >= max:
				run.status, run.incomplete = "incomplete", "max_tool_calls"
				return nil
			default:
				out := run.call(ctx, m, tc.Function.Name, tc.Function.Arguments, "")
				ran = append(ran, tc)
				results = append(results, chatMessage{Role: "tool", ToolCallID: tc.ID, Content: out})
			}
		}
		if stop {
			return nil
		}
		run.msgs = append(run.msgs, chatMessage{Role: "assistant", ToolCalls: ran})
		run.msgs = append(run.msgs, results...)
	}
}

// chatAnswer is what of a chat completion the loop reads.
type chatAnswer struct {
	Content   string
	ToolCalls []toolCall
}

// complete asks the model group for the next turn.
func (run *respRun) complete(ctx context.Context) (chatAnswer, *bus.Error) {
	body := map[string]any{}
	for k, v := range run.extra {
		body[k] = v
	}
	body["model"], body["messages"] = run.g.info.Name, run.msgs
	if len(run.tools) > 0 {
		body["tools"] = run.tools
		if len(run.req.ToolChoice) > 0 {
			body["tool_choice"] = run.req.ToolChoice
		}
		if run.req.ParallelToolCalls != nil {
			body["parallel_tool_calls"] = *run.req.ParallelToolCalls
		}
	}
	if run.req.MaxOutputTokens != nil {
		body["max_tokens"] = *run.req.MaxOutputTokens
	}
	if run.req.Temperature != nil {
		body["temperature"] = *run.req.Temperature
	}
	if run.req.TopP != nil {
		body["top_p"] = *run.req.TopP
	}
	if run.req.User != "" {
		body["user"] = run.req.User
	}
	b, _ := json.Marshal(body)
	resp, _, f := run.r.complete(ctx, run.g, run.hdr, b, run.env)
	if f != nil {
		return chatAnswer{}, f.Error
	}
	run.deployment = resp.Header.Get(bus.HeaderLLMDeployment)
	if p, c, ok := bus.ParseLLMUsage(resp.Header.Get(bus.HeaderLLMUsage)); ok {
		run.prompt, run.completion = run.prompt+p, run.completion+c
	}
	var ans struct {
		Choices []struct {
			Message struct {
				Content   *string    `json:"content"`
				ToolCalls []toolCall `json:"tool_calls"`
			} `json:"message"`
		} `json:"choices"`
	}
	run.last = resp.Data
	if json.Unmarshal(resp.Data, &ans) != nil || len(ans.Choices) == 0 {
		return chatAnswer{}, bus.Errorf(bus.ErrProvider, "model %s answered without a choice", run.g.info.Name)
	}
	m := ans.Choices[0].Message
	out := chatAnswer{ToolCalls: m.ToolCalls}
	if m.Content != nil {
		out.Content = *m.Content
	}
	return out, nil
}

// call runs one MCP tool call, adds its mcp_call item and returns what the
// model is told. approvalID names the approval it ran under, if any.
func (run *respRun) call(ctx context.Context, m *mcpTool, name, args, approvalID string) string {
	run.calls++
	out, failed := run.r.callTool(ctx, run.env, m, name, args, 1000+run.calls)
	item := map[string]any{"id": "mcp_" + nuid.Next(), "type": "mcp_call", "server_label": m.Label, "name": name,
		"arguments": args, "output": out, "error": nil, "status": "completed"}
	if approvalID != "" {
		item["approval_request_id"] = approvalID
	}
	if failed {
		item["output"], item["error"], item["status"] = nil, out, "failed"
	}
	run.add(item)
	return out
}

// add appends an output item (and streams it).
func (run *respRun) add(item map[string]any) {
	run.output = append(run.output, item)
	if run.events != nil {
		run.events.item(len(run.output)-1, item)
	}
}

// response is the Response object as it stands.
func (run *respRun) response(status string, fail *bus.Error) map[string]any {
	output := run.output
	if output == nil {
		output = []map[string]any{}
	}
	resp := map[string]any{"id": run.id, "object": "response", "created_at": run.start.Unix(), "status": status,
		"model": run.req.Model, "output": output, "parallel_tool_calls": run.req.ParallelToolCalls == nil || *run.req.ParallelToolCalls,
		"tools": run.req.Tools, "error": nil, "incomplete_details": nil,
		"usage": map[string]any{"input_tokens": run.prompt, "output_tokens": run.completion, "total_tokens": run.prompt + run.completion,
			"input_tokens_details": map[string]int{"cached_tokens": 0}, "output_tokens_details": map[string]int{"reasoning_tokens": 0}}}
	if run.req.Tools == nil {
		resp["tools"] = []any{}
	}
	if run.req.Instructions != "" {
		resp["instructions"] = run.req.Instructions
	}
	if len(run.req.Metadata) > 0 {
		resp["metadata"] = run.req.Metadata
	}
	if run.incomplete != "" {
		resp["incomplete_details"] = map[string]string{"reason": run.incomplete}
	}
	if fail != nil {
		resp["error"] = map[string]string{"code": fail.Kind.Code, "message": fail.Message}
	}
	return resp
}

// sealApproval makes an approval request id that carries the call, sealed
// with the gateway's key and bound to the caller's key: any replica can
// run it once approved, and no one can forge or reuse it for another key.
func (run *respRun) sealApproval(m *mcpTool, name, args string) (string, *bus.Error) {
	if run.r.o.Secrets == nil {
		return "", bus.Errorf(bus.ErrServiceUnavailable, "tool %s needs the caller's approval (require_approval), and this LLM service has no secret key to seal the request with (set MCPBUS_SALT_KEY)", name)
	}
	b, _ := json.Marshal(sealedCall{Label: m.Label, Name: name, Arguments: args, Expires: time.Now().Add(approvalTTL).Unix()})
	return "mcpr_" + run.r.o.Secrets.SealToken(approvalBucket, run.env.Caller.KeyID, string(b)), nil
}

// approvalTTL bounds how long an approval request may be answered.
const approvalTTL = time.Hour

type sealedCall struct {
	Label     string `json:"l"`
	Name      string `json:"n"`
	Arguments string `json:"a"`
	Expires   int64  `json:"e"`
}

// approved runs (or declines) the call of an approval response, as the
// conversation's next tool result.
func (run *respRun) approved(ctx context.Context, a approval) *bus.Error {
	bad := bus.Errorf(bus.ErrBadRequest, "mcp_approval_response: approval_request_id %q is not one this gateway made for this key, or it expired", bus.Shorten(a.requestID, 24))
	sealed, ok := strings.CutPrefix(a.requestID, "mcpr_")
	if !ok || run.r.o.Secrets == nil || !bus.IsSealed(sealed) {
		return bad
	}
	plain, err := run.r.o.Secrets.OpenToken(approvalBucket, run.env.Caller.KeyID, sealed)
	var c sealedCall
	if err != nil || json.Unmarshal([]byte(plain), &c) != nil || time.Now().Unix() > c.Expires {
		return bad
	}
	var m *mcpTool
	for _, t := range run.mcps {
		if t.Label == c.Label {
			m = t
		}
	}
	if m == nil {
		return bus.Errorf(bus.ErrBadRequest, "mcp_approval_response: the approved call is of server_label %q, which this request's tools do not name", bus.Shorten(c.Label, 64))
	}
	id := "call_" + strconv.Itoa(len(run.msgs))
	run.msgs = appendCall(run.msgs, newToolCall(id, c.Name, c.Arguments))
	out := "The user did not approve this tool call."
	if a.approve {
		out = run.call(ctx, m, c.Name, c.Arguments, a.requestID)
	}
	run.msgs = append(run.msgs, chatMessage{Role: "tool", ToolCallID: id, Content: out})
	return nil
}
