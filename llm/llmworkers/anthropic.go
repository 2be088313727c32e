package llmworkers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
)

// The Anthropic wire: a chat completions request is made into a Messages
// API request (anthropic_request.go), and the answer, or each event of its
// stream, back into OpenAI's shape, so a client speaks OpenAI to every
// deployment. anthropic-version is the deployment's api_version, else
// DefaultAnthropicVersion.

// DefaultAnthropicBase applies when the deployment sets no api_base.
const DefaultAnthropicBase = "https://api.anthropic.com"

type anthropicWire struct{}

func (anthropicWire) chatURL(m config.Model) string {
	base := strings.TrimRight(m.APIBase, "/")
	if base == "" {
		base = DefaultAnthropicBase
	}
	if strings.HasSuffix(base, "/v1") {
		return base + "/messages"
	}
	return base + "/v1/messages"
}

func (anthropicWire) embeddingsURL(config.Model) string { return "" }

func (anthropicWire) authorize(h http.Header, m config.Model) {
	if m.APIKey != "" {
		h.Set("X-Api-Key", m.APIKey)
	}
	h.Set("Anthropic-Version", anthropicVersion(m))
}

func anthropicVersion(m config.Model) string {
	if m.APIVersion != "" {
		return m.APIVersion
	}
	return DefaultAnthropicVersion
}

// anthropicChat makes a chat completions call to an Anthropic deployment.
func (c *call) anthropicChat(ctx context.Context, body []byte) {
	out, req, err := anthropicBody(body, c.d.m.Upstream, anthropicVersion(c.d.m))
	if err != nil {
		c.fail(bus.Errorf(bus.ErrBadRequest, "%s", err.Error()))
		return
	}
	if req.Stream && c.env.Stream == "" {
		c.fail(bus.Errorf(bus.ErrBadRequest, "a streaming request came without a stream to send its chunks to"))
		return
	}
	resp, ok := c.post(ctx, c.d.wire.chatURL(c.d.m), out, req.Stream, func(h http.Header) { c.d.wire.authorize(h, c.d.m) })
	if !ok {
		return
	}
	defer func() { _ = resp.Body.Close() }()
	if req.Stream {
		c.anthropicRelay(ctx, resp, req.StreamOptions.IncludeUsage)
		return
	}
	raw, ok := c.readAnswer(ctx, resp)
	if !ok {
		return
	}
	chat, err := chatFromAnthropic(raw)
	if err == nil {
		c.readUsage(chat)
	}
	if err != nil {
		c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s answered with a body that is not a Messages API answer", c.d.m.ID, c.model))
		return
	}
	c.respond(c.d.scrub.JSON(chat))
}

type anBlock struct {
	Type  string          `json:"type"`
	Text  string          `json:"text"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

type anUsage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

// prompt is what OpenAI counts as prompt tokens: cached ones too.
func (u anUsage) prompt() int {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

func usageOf(prompt, completion int) map[string]int {
	return map[string]int{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
}

// chatFromAnthropic is a Messages API answer as a chat.completion.
func chatFromAnthropic(raw []byte) ([]byte, error) {
	var an struct {
		ID         string    `json:"id"`
		Type       string    `json:"type"`
		Model      string    `json:"model"`
		Content    []anBlock `json:"content"`
		StopReason string    `json:"stop_reason"`
		Usage      anUsage   `json:"usage"`
	}
	if err := json.Unmarshal(raw, &an); err != nil || an.Type != "message" {
		return nil, errNotAMessage
	}
	msg := map[string]any{"role": "assistant", "content": nil}
	var text strings.Builder
	var calls []map[string]any
	for _, b := range an.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			args := string(b.Input)
			if args == "" || args == "null" {
				args = "{}"
			}
			calls = append(calls, map[string]any{"id": b.ID, "type": "function", "function": map[string]any{"name": b.Name, "arguments": args}})
		}
	}
	if text.Len() > 0 {
		msg["content"] = text.String()
	}
	if len(calls) > 0 {
		msg["tool_calls"] = calls
	}
	return json.Marshal(map[string]any{
		"id": an.ID, "object": "chat.completion", "created": time.Now().Unix(), "model": an.Model,
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finishReason(an.StopReason)}},
		"usage":   usageOf(an.Usage.prompt(), an.Usage.OutputTokens),
	})
}

// finishReason is an Anthropic stop_reason as OpenAI's finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop"
}

// anthropicRelay reads the Messages API event stream and sends each event
// that carries something as an OpenAI chunk, as it comes: the role first,
// text deltas as content, a tool_use block as a tool call (indexed by its
// ordinal among the tool calls, as OpenAI's are) and its input deltas as
// arguments, the stop reason as finish_reason, and with
// stream_options.include_usage a last chunk with the usage.
func (c *call) anthropicRelay(ctx context.Context, resp *http.Response, includeUsage bool) {
	to := bus.ClientSubject(c.env.Stream, bus.LLMSender)
	var id, model string
	created := time.Now().Unix()
	var usage anUsage
	tools := map[int]int{} // content block index -> tool ordinal
	chunk := func(delta map[string]any, finish any) bool {
		b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
		return c.send(to, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), int(c.nc.MaxPayload()-16<<10))
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if !ok {
			continue
		}
		var ev struct {
			Type    string `json:"type"`
			Index   int    `json:"index"`
			Message struct {
				ID    string  `json:"id"`
				Model string  `json:"model"`
				Usage anUsage `json:"usage"`
			} `json:"message"`
			ContentBlock anBlock `json:"content_block"`
			Delta        struct {
				Type        string `json:"type"`
				Text        string `json:"text"`
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			} `json:"delta"`
			Usage anUsage `json:"usage"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(bytes.TrimSpace(data), &ev) != nil {
			c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s sent an event that is not JSON", c.d.m.ID, c.model))
			return
		}
		sent := true
		switch ev.Type {
		case "message_start":
			id, model, usage = ev.Message.ID, ev.Message.Model, ev.Message.Usage
			sent = chunk(map[string]any{"role": "assistant", "content": ""}, nil)
		case "content_block_start":
			if ev.ContentBlock.Type == "tool_use" {
				k := len(tools)
				tools[ev.Index] = k
				sent = chunk(map[string]any{"tool_calls": []any{map[string]any{"index": k, "id": ev.ContentBlock.ID, "type": "function",
					"function": map[string]any{"name": ev.ContentBlock.Name, "arguments": ""}}}}, nil)
			}
		case "content_block_delta":
			switch ev.Delta.Type {
			case "text_delta":
				sent = chunk(map[string]any{"content": ev.Delta.Text}, nil)
			case "input_json_delta":
				sent = chunk(map[string]any{"tool_calls": []any{map[string]any{"index": tools[ev.Index],
					"function": map[string]any{"arguments": ev.Delta.PartialJSON}}}}, nil)
			}
		case "message_delta":
			usage.OutputTokens = ev.Usage.OutputTokens
			if ev.Delta.StopReason != "" {
				sent = chunk(map[string]any{}, finishReason(ev.Delta.StopReason))
			}
		case "error":
			c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s failed mid-stream (%s): %s", c.d.m.ID, c.model,
				bus.Shorten(ev.Error.Type, 64), bus.Shorten(c.d.scrub.Text(ev.Error.Message), 512)))
			return
		case "message_stop":
			c.prompt, c.completion, c.usage = usage.prompt(), usage.OutputTokens, true
			if includeUsage {
				b, _ := json.Marshal(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": model,
					"choices": []any{}, "usage": usageOf(usage.prompt(), usage.OutputTokens)})
				if !c.send(to, b) {
					return
				}
			}
			c.respond(nil)
			return
		}
		if !sent {
			return
		}
	}
	if err := sc.Err(); err != nil {
		c.fail(c.transportError(ctx, err))
		return
	}
	c.fail(bus.Errorf(bus.ErrProvider, "deployment %s of model %s ended its stream without message_stop", c.d.m.ID, c.model))
}

var errNotAMessage = errors.New("not a Messages API answer")
