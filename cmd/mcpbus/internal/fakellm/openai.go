package fakellm

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// The OpenAI wire: POST /v1/chat/completions (and Azure's
// /openai/deployments/{deployment}/chat/completions?api-version=...),
// POST /v1/embeddings, GET /v1/models.

type openaiRequest struct {
	Model    string `json:"model"`
	Messages []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCallID string          `json:"tool_call_id"`
	} `json:"messages"`
	Tools []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	Stream        bool `json:"stream"`
	StreamOptions struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// contentText is a message's text: a string, or the text parts of an array.
func contentText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	_ = json.Unmarshal(raw, &parts)
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request, deployment string) {
	var req openaiRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil {
		openaiError(w, &providerError{status: 400, kind: "invalid_request_error", message: "the body is not a chat completions request: " + err.Error()})
		return
	}
	if deployment != "" {
		req.Model = deployment // Azure: the URL names it, the body's is ignored
	}
	if req.Model == "" || len(req.Messages) == 0 {
		openaiError(w, &providerError{status: 400, kind: "invalid_request_error", message: "model and messages are required"})
		return
	}
	var turns []turn
	for _, m := range req.Messages {
		turns = append(turns, turn{role: m.Role, text: contentText(m.Content), toolResult: m.Role == "tool"})
	}
	var tools []string
	for _, t := range req.Tools {
		tools = append(tools, t.Function.Name)
	}
	out, perr := scripted(req.Model, turns, tools)
	s.count(req.Model)
	if perr != nil {
		openaiError(w, perr)
		return
	}
	id := fmt.Sprintf("chatcmpl-fake-%d", s.seq.Add(1))
	created := time.Now().Unix()
	prompt := promptTokens(turns)
	completion := words(out.text)
	finish := "stop"
	var toolCalls []map[string]any
	if out.toolName != "" {
		finish, completion = "tool_calls", 1
		toolCalls = []map[string]any{{"id": fmt.Sprintf("call_%d", s.seq.Add(1)), "type": "function",
			"function": map[string]any{"name": out.toolName, "arguments": string(out.toolArgs)}}}
	}
	usage := map[string]int{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
	if !req.Stream {
		msg := map[string]any{"role": "assistant", "content": nil}
		if out.toolName == "" {
			msg["content"] = out.text
		} else {
			msg["tool_calls"] = toolCalls
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}}, "usage": usage})
		return
	}
	sse := startSSE(w)
	chunk := func(delta map[string]any, finish any) {
		sse.data(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}})
	}
	chunk(map[string]any{"role": "assistant", "content": ""}, nil)
	if out.toolName != "" {
		call := toolCalls[0]
		chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": call["id"], "type": "function",
			"function": map[string]any{"name": out.toolName, "arguments": ""}}}}, nil)
		chunk(map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]any{"arguments": string(out.toolArgs)}}}}, nil)
	}
	for _, c := range chunks(out.text) {
		chunk(map[string]any{"content": c}, nil)
	}
	chunk(map[string]any{}, finish)
	if req.StreamOptions.IncludeUsage {
		sse.data(map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{}, "usage": usage})
	}
	sse.raw("[DONE]")
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&req); err != nil || req.Model == "" {
		openaiError(w, &providerError{status: 400, kind: "invalid_request_error", message: "model and input are required"})
		return
	}
	var inputs []string
	if json.Unmarshal(req.Input, &inputs) != nil {
		var one string
		if json.Unmarshal(req.Input, &one) != nil {
			openaiError(w, &providerError{status: 400, kind: "invalid_request_error", message: "input must be a string or an array of strings"})
			return
		}
		inputs = []string{one}
	}
	if _, perr := scripted(req.Model, nil, nil); perr != nil && strings.HasPrefix(req.Model, "fake-error-") {
		openaiError(w, perr)
		return
	}
	s.count(req.Model)
	data, tokens := []any{}, 0
	for i, in := range inputs {
		data = append(data, map[string]any{"object": "embedding", "index": i, "embedding": vector(in)})
		tokens += words(in)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data, "model": req.Model,
		"usage": map[string]int{"prompt_tokens": tokens, "total_tokens": tokens}})
}

// vector is a deterministic 8-dimensional embedding of s.
func vector(s string) []float64 {
	sum := sha256.Sum256([]byte(s))
	v := make([]float64, 8)
	for i := range v {
		v[i] = float64(int32(binary.BigEndian.Uint32(sum[i*4:]))) / float64(1<<31)
	}
	return v
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	var data []any
	for _, m := range []string{"fake-gpt", "fake-claude", "fake-embed"} {
		data = append(data, map[string]any{"id": m, "object": "model", "created": 0, "owned_by": "fakellm"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

// openaiError writes e as OpenAI does.
func openaiError(w http.ResponseWriter, e *providerError) {
	code := any(nil)
	switch e.kind {
	case "context_length_exceeded":
		code = "context_length_exceeded"
		e.kind = "invalid_request_error"
	case "rate_limit_error":
		code = "rate_limit_exceeded"
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]any{"error": map[string]any{"message": e.message, "type": e.kind, "param": nil, "code": code}})
}
