package fakellm

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// The Anthropic wire: POST /v1/messages, JSON and SSE (event: <type>).

type anthropicRequest struct {
	Model     string `json:"model"`
	MaxTokens int    `json:"max_tokens"`
	Messages  []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Name string `json:"name"`
	} `json:"tools"`
	Stream bool `json:"stream"`
}

// anthropicTurns reads messages: a user message whose blocks are tool
// results is a tool result turn.
func anthropicTurns(req *anthropicRequest) []turn {
	var turns []turn
	for _, m := range req.Messages {
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			turns = append(turns, turn{role: m.Role, text: s})
			continue
		}
		var blocks []struct {
			Type    string          `json:"type"`
			Text    string          `json:"text"`
			Content json.RawMessage `json:"content"`
		}
		_ = json.Unmarshal(m.Content, &blocks)
		t := turn{role: m.Role}
		for _, b := range blocks {
			switch b.Type {
			case "text":
				t.text += b.Text
			case "tool_result":
				t.toolResult = true
				t.text += contentText(b.Content)
			}
		}
		turns = append(turns, t)
	}
	return turns
}

func (s *Server) messages(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Anthropic-Version") == "" {
		anthropicError(w, &providerError{status: 400, kind: "invalid_request_error", message: "anthropic-version: header is required"})
		return
	}
	var req anthropicRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		anthropicError(w, &providerError{status: 400, kind: "invalid_request_error", message: "the body is not a messages request: " + err.Error()})
		return
	}
	if req.Model == "" || req.MaxTokens <= 0 || len(req.Messages) == 0 {
		anthropicError(w, &providerError{status: 400, kind: "invalid_request_error", message: "model, max_tokens and messages are required"})
		return
	}
	turns := anthropicTurns(&req)
	var tools []string
	for _, t := range req.Tools {
		tools = append(tools, t.Name)
	}
	out, perr := scripted(req.Model, turns, tools)
	s.count(req.Model)
	if perr != nil {
		anthropicError(w, perr)
		return
	}
	id := fmt.Sprintf("msg_fake_%d", s.seq.Add(1))
	input, output := promptTokens(turns), words(out.text)
	stop := "end_turn"
	var block map[string]any
	if out.toolName != "" {
		stop, output = "tool_use", 1
		var args map[string]any
		_ = json.Unmarshal(out.toolArgs, &args)
		block = map[string]any{"type": "tool_use", "id": fmt.Sprintf("toolu_fake_%d", s.seq.Add(1)), "name": out.toolName, "input": args}
	} else {
		block = map[string]any{"type": "text", "text": out.text}
	}
	if !req.Stream {
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "type": "message", "role": "assistant", "model": req.Model,
			"content": []any{block}, "stop_reason": stop, "stop_sequence": nil,
			"usage": map[string]int{"input_tokens": input, "output_tokens": output}})
		return
	}
	sse := startSSE(w)
	sse.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{"id": id, "type": "message",
		"role": "assistant", "model": req.Model, "content": []any{}, "stop_reason": nil, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": input, "output_tokens": 0}}})
	if out.toolName != "" {
		started := map[string]any{"type": "tool_use", "id": block["id"], "name": out.toolName, "input": map[string]any{}}
		sse.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": started})
		sse.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "input_json_delta", "partial_json": string(out.toolArgs)}})
	} else {
		sse.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}})
		for _, c := range chunks(out.text) {
			sse.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
				"delta": map[string]any{"type": "text_delta", "text": c}})
		}
	}
	sse.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	sse.event("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]int{"output_tokens": output}})
	sse.event("message_stop", map[string]any{"type": "message_stop"})
}

// anthropicError writes e as Anthropic does.
func anthropicError(w http.ResponseWriter, e *providerError) {
	kind := e.kind
	switch {
	case kind == "context_length_exceeded":
		kind, e.message = "invalid_request_error", "prompt is too long: the messages exceed the model's context window"
	case e.status == 429:
		kind = "rate_limit_error"
		w.Header().Set("Retry-After", "1")
	case e.status == 529 || e.status == 503:
		kind = "overloaded_error"
	case e.status >= 500:
		kind = "api_error"
	}
	writeJSON(w, e.status, map[string]any{"type": "error", "error": map[string]any{"type": kind, "message": e.message}})
}
