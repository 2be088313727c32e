package llmworkers

import (
	"encoding/json"
	"fmt"
	"strings"
)

// The Anthropic wire, request side: an OpenAI chat completions body made
// into a Messages API body, LiteLLM's mapping:
//
//   - system and developer messages become the top-level system text;
//   - user content (a string, or text and image_url parts) becomes user
//     content blocks (text, image from a data: URL or a URL);
//   - an assistant's tool_calls become tool_use blocks (arguments parsed);
//   - tool messages become tool_result blocks of one user turn;
//   - tools, tool_choice (auto, required -> any, none, a function -> tool),
//     parallel_tool_calls false, stop, user (metadata.user_id) and
//     max_tokens / max_completion_tokens (default DefaultAnthropicMaxTokens,
//     which the Messages API requires); temperature and top_p only under
//     anthropic-version 2023-06-01, which accepts them (2026-10-21 refuses
//     them even at their defaults). Other OpenAI parameters are dropped.

// DefaultAnthropicVersion and DefaultAnthropicMaxTokens apply when the
// deployment's api_version, or the request's max_tokens, is unset.
const (
	DefaultAnthropicVersion   = "2023-06-01"
	DefaultAnthropicMaxTokens = 4096
)

type oaMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []oaToolCall    `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

type oaToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type oaRequest struct {
	Messages            []oaMessage     `json:"messages"`
	Tools               []oaTool        `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	MaxTokens           int             `json:"max_tokens"`
	MaxCompletionTokens int             `json:"max_completion_tokens"`
	Stop                json.RawMessage `json:"stop"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	User                string          `json:"user"`
	Stream              bool            `json:"stream"`
	StreamOptions       struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type oaTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description"`
		Parameters  json.RawMessage `json:"parameters"`
	} `json:"function"`
}

type block = map[string]any

type anMessage struct {
	Role    string  `json:"role"`
	Content []block `json:"content"`
}

// anthropicBody makes the Messages API body of an OpenAI request for model
// under version; a request that cannot be made into one is refused with a
// message naming what.
func anthropicBody(body []byte, model, version string) (out []byte, req oaRequest, err error) {
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, req, fmt.Errorf("the request body is not a chat completions request: %v", err)
	}
	an := map[string]any{"model": model}
	var system []string
	var msgs []anMessage
	add := func(role string, blocks ...block) {
		if n := len(msgs); n > 0 && msgs[n-1].Role == role {
			msgs[n-1].Content = append(msgs[n-1].Content, blocks...)
			return
		}
		msgs = append(msgs, anMessage{Role: role, Content: blocks})
	}
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			text, _, err := contentBlocks(m.Content, i)
			if err != nil {
				return nil, req, err
			}
			for _, b := range text {
				system = append(system, b["text"].(string))
			}
		case "user":
			blocks, _, err := contentBlocks(m.Content, i)
			if err != nil {
				return nil, req, err
			}
			add("user", blocks...)
		case "assistant":
			blocks, _, err := contentBlocks(m.Content, i)
			if err != nil {
				return nil, req, err
			}
			for j, tc := range m.ToolCalls {
				input := map[string]any{}
				if strings.TrimSpace(tc.Function.Arguments) != "" {
					if err := json.Unmarshal([]byte(tc.Function.Arguments), &input); err != nil {
						return nil, req, fmt.Errorf("messages[%d].tool_calls[%d].function.arguments: not a JSON object", i, j)
					}
				}
				blocks = append(blocks, block{"type": "tool_use", "id": tc.ID, "name": tc.Function.Name, "input": input})
			}
			if len(blocks) > 0 {
				add("assistant", blocks...)
			}
		case "tool":
			_, text, err := contentBlocks(m.Content, i)
			if err != nil {
				return nil, req, err
			}
			add("user", block{"type": "tool_result", "tool_use_id": m.ToolCallID, "content": text})
		default:
			return nil, req, fmt.Errorf("messages[%d].role: %q is not system, developer, user, assistant or tool", i, m.Role)
		}
	}
	if len(msgs) == 0 {
		return nil, req, fmt.Errorf("messages: at least one user message is required")
	}
	an["messages"] = msgs
	if len(system) > 0 {
		an["system"] = strings.Join(system, "\n\n")
	}
	maxTokens := req.MaxCompletionTokens
	if maxTokens == 0 {
		maxTokens = req.MaxTokens
	}
	if maxTokens <= 0 {
		maxTokens = DefaultAnthropicMaxTokens
	}
	an["max_tokens"] = maxTokens
	if len(req.Tools) > 0 {
		var tools []block
		for _, t := range req.Tools {
			schema := t.Function.Parameters
			if len(schema) == 0 || string(schema) == "null" {
				schema = json.RawMessage(`{"type":"object","properties":{}}`)
			}
			tb := block{"name": t.Function.Name, "input_schema": schema}
			if t.Function.Description != "" {
				tb["description"] = t.Function.Description
			}
			tools = append(tools, tb)
		}
		an["tools"] = tools
	}
	if choice, err := toolChoice(req.ToolChoice, req.ParallelToolCalls); err != nil {
		return nil, req, err
	} else if choice != nil {
		an["tool_choice"] = choice
	}
	if stops := stopSequences(req.Stop); len(stops) > 0 {
		an["stop_sequences"] = stops
	}
	if version == "2023-06-01" {
		if req.Temperature != nil {
			an["temperature"] = *req.Temperature
		}
		if req.TopP != nil {
			an["top_p"] = *req.TopP
		}
	}
	if req.User != "" {
		an["metadata"] = map[string]any{"user_id": req.User}
	}
	if req.Stream {
		an["stream"] = true
	}
	out, err = json.Marshal(an)
	return out, req, err
}

// contentBlocks reads one message's content: its blocks, and its text.
func contentBlocks(raw json.RawMessage, i int) ([]block, string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return nil, "", nil
		}
		return []block{{"type": "text", "text": s}}, s, nil
	}
	var parts []struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, "", fmt.Errorf("messages[%d].content: neither a string nor a list of parts", i)
	}
	var blocks []block
	var text strings.Builder
	for j, p := range parts {
		switch p.Type {
		case "text":
			blocks = append(blocks, block{"type": "text", "text": p.Text})
			text.WriteString(p.Text)
		case "image_url":
			blocks = append(blocks, block{"type": "image", "source": imageSource(p.ImageURL.URL)})
		default:
			return nil, "", fmt.Errorf("messages[%d].content[%d].type: %q is not served on Anthropic deployments (text, image_url)", i, j, p.Type)
		}
	}
	return blocks, text.String(), nil
}

// imageSource is an image_url as Anthropic's source: base64 from a data:
// URL, else the URL.
func imageSource(u string) block {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		if media, data, ok := strings.Cut(rest, ";base64,"); ok {
			return block{"type": "base64", "media_type": media, "data": data}
		}
	}
	return block{"type": "url", "url": u}
}

func toolChoice(raw json.RawMessage, parallel *bool) (block, error) {
	var c block
	var s string
	switch {
	case len(raw) == 0 || string(raw) == "null":
		if parallel == nil || *parallel {
			return nil, nil
		}
		c = block{"type": "auto"}
	case json.Unmarshal(raw, &s) == nil:
		switch s {
		case "auto":
			c = block{"type": "auto"}
		case "required":
			c = block{"type": "any"}
		case "none":
			c = block{"type": "none"}
		default:
			return nil, fmt.Errorf("tool_choice: %q is not auto, required or none", s)
		}
	default:
		var fn struct {
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if json.Unmarshal(raw, &fn) != nil || fn.Function.Name == "" {
			return nil, fmt.Errorf("tool_choice: neither a string nor {\"type\":\"function\",\"function\":{\"name\":...}}")
		}
		c = block{"type": "tool", "name": fn.Function.Name}
	}
	if parallel != nil && !*parallel && c["type"] != "none" {
		c["disable_parallel_tool_use"] = true
	}
	return c, nil
}

func stopSequences(raw json.RawMessage) []string {
	var one string
	if json.Unmarshal(raw, &one) == nil && one != "" {
		return []string{one}
	}
	var many []string
	_ = json.Unmarshal(raw, &many)
	return many
}
