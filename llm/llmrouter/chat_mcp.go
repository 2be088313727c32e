package llmrouter

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// MCP tools on /v1/chat/completions, as LiteLLM takes them: a tool
// {"type": "mcp", "server_url": "litellm_proxy" | "<gateway>/mcp[/<s>]",
// "require_approval": "never"} among the request's tools is run the way
// /v1/responses runs it (responses.go: listed and called through the MCP
// router as the caller), and the answer is the model's last chat
// completion, its usage the sum of every round's. A chat completion cannot
// carry an approval request, so a tool that needs one is refused (400).
// With "stream": true the last answer goes out as chunks once it is made.

// mcpToolsIn reports whether a chat request's tools include an mcp one.
func mcpToolsIn(body []byte) bool {
	if !bytes.Contains(body, []byte(`"mcp"`)) {
		return false
	}
	var req struct {
		Tools []struct {
			Type string `json:"type"`
		} `json:"tools"`
	}
	_ = json.Unmarshal(body, &req)
	for _, t := range req.Tools {
		if t.Type == "mcp" {
			return true
		}
	}
	return false
}

// chatWithMCP answers a chat completions request with MCP tools.
func (r *Router) chatWithMCP(ctx context.Context, env bus.Envelope, g *group, hdr nats.Header, body []byte, reply bus.Reply) (*nats.Msg, *bus.Error) {
	run := &respRun{r: r, env: env, g: g, hdr: hdr, byName: map[string]*mcpTool{}, chat: true, start: time.Now()}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, r.fail(reply, bus.Errorf(bus.ErrBadRequest, "the request body is not a JSON object"))
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(req["messages"], &msgs); err != nil || len(msgs) == 0 {
		return nil, r.fail(reply, bus.Errorf(bus.ErrBadRequest, "messages: a list of at least one message"))
	}
	for _, m := range msgs {
		run.msgs = append(run.msgs, m)
	}
	var tools []json.RawMessage
	_ = json.Unmarshal(req["tools"], &tools)
	for i, raw := range tools {
		var t struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(raw, &t)
		if t.Type != "mcp" {
			run.tools = append(run.tools, raw) // the caller's own, as they came
			continue
		}
		m, e := readMCPTool(raw, i, hdr.Get(bus.HeaderLLMBase))
		if e != nil {
			return nil, r.fail(reply, e)
		}
		run.mcps = append(run.mcps, m)
	}
	var stream bool
	_ = json.Unmarshal(req["stream"], &stream)
	var opts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	_ = json.Unmarshal(req["stream_options"], &opts)
	run.extra = map[string]json.RawMessage{}
	for k, v := range req {
		switch k {
		case "model", "messages", "tools", "stream", "stream_options":
		default:
			run.extra[k] = v
		}
	}
	run.listMCP(ctx)
	if e := run.loop(ctx); e != nil {
		return nil, r.fail(reply, e)
	}
	last := withUsage(run.last, run.prompt, run.completion)
	h := nats.Header{bus.HeaderLLMModel: {g.info.Name}, bus.HeaderLLMDeployment: {run.deployment},
		bus.HeaderLLMUsage: {bus.FormatLLMUsage(run.prompt, run.completion)}}
	if stream {
		if env.Stream == "" {
			return nil, r.fail(reply, bus.Errorf(bus.ErrBadRequest, "a streaming request came without a stream to send its chunks to"))
		}
		sendChunks(r.nc, bus.ClientSubject(env.Stream, bus.LLMSender), last, opts.IncludeUsage)
		h.Set(bus.HeaderLLMStreamed, "true")
		reply.Msg(nil, h)
		return &nats.Msg{Header: h}, nil
	}
	reply.Msg(last, h)
	return &nats.Msg{Data: last, Header: h}, nil
}

func (r *Router) fail(reply bus.Reply, e *bus.Error) *bus.Error {
	_ = reply.Error(e)
	return e
}

// withUsage is a chat completion with its usage set to the totals.
func withUsage(answer []byte, prompt, completion int) []byte {
	var m map[string]json.RawMessage
	if json.Unmarshal(answer, &m) != nil {
		return answer
	}
	m["usage"], _ = json.Marshal(map[string]int{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
	out, _ := json.Marshal(m)
	return out
}

// sendChunks sends a chat completion as a stream's chunks: the role and
// content, the tool calls, the finish reason, and the usage when asked.
func sendChunks(nc *nats.Conn, to string, answer []byte, includeUsage bool) {
	var a struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content   *string    `json:"content"`
				ToolCalls []toolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage json.RawMessage `json:"usage"`
	}
	_ = json.Unmarshal(answer, &a)
	if a.ID == "" {
		a.ID = "chatcmpl-" + nuid.Next()
	}
	chunk := func(choices []any, usage json.RawMessage) {
		c := map[string]any{"id": a.ID, "object": "chat.completion.chunk", "created": a.Created, "model": a.Model, "choices": choices}
		if usage != nil {
			c["usage"] = usage
		}
		b, _ := json.Marshal(c)
		_ = nc.Publish(to, b)
	}
	for i, ch := range a.Choices {
		delta := map[string]any{"role": "assistant", "content": ch.Message.Content}
		if len(ch.Message.ToolCalls) > 0 {
			calls := make([]any, len(ch.Message.ToolCalls))
			for j, tc := range ch.Message.ToolCalls {
				calls[j] = map[string]any{"index": j, "id": tc.ID, "type": "function", "function": tc.Function}
			}
			delta["tool_calls"] = calls
		}
		chunk([]any{map[string]any{"index": i, "delta": delta, "finish_reason": nil}}, nil)
		chunk([]any{map[string]any{"index": i, "delta": map[string]any{}, "finish_reason": ch.FinishReason}}, nil)
	}
	if includeUsage {
		chunk([]any{}, a.Usage)
	}
}
