// Package fakellm is a local LLM provider speaking the real wire formats of
// OpenAI (chat completions, JSON and SSE; embeddings; models; Azure's
// deployments URL) and Anthropic (messages, JSON and SSE), with scripted
// models instead of a real one: providers cannot be reached from here, and
// the gateway's LLM routes, their streaming and the Responses + MCP loop
// need an upstream to run against end to end (plan: docs/plans/llm-a2a.md,
// step 0). `mcpbus fake-llm` serves it.
//
// The models, by name:
//
//   - fake-error-<status> (429, 500, 503, ...): the provider's error with
//     that status (429 with retry-after);
//   - fake-context-length: the provider's context-length error (400);
//   - any other name: a scripted chat model. After a tool result it answers
//     "tool result: <text>". When the last user message says "call <tool>"
//     (optionally "with {json}") and a tool of that name is offered (or one
//     whose name ends with "__<tool>", "-<tool>" or "_<tool>", as gateways
//     prefix them), it calls that tool with those arguments. Otherwise it
//     answers "echo: <last user text>".
//
// Token counts are words: what a test can predict.
package fakellm

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// turn is one message of a conversation, in either wire format.
type turn struct {
	role       string // user, assistant, tool (a tool result), system
	text       string
	toolResult bool
}

// reply is what a scripted model answers.
type reply struct {
	text     string
	toolName string          // a tool call instead of text
	toolArgs json.RawMessage // its arguments
}

// providerError is a scripted failure.
type providerError struct {
	status  int
	kind    string // the wire's error type
	message string
}

// scripted answers a conversation offered tools, or fails as its model says.
func scripted(model string, turns []turn, tools []string) (reply, *providerError) {
	if s, ok := strings.CutPrefix(model, "fake-error-"); ok {
		status, err := strconv.Atoi(s)
		if err != nil || status < 400 || status > 599 {
			status = 500
		}
		kind := "server_error"
		if status == 429 {
			kind = "rate_limit_error"
		}
		return reply{}, &providerError{status: status, kind: kind, message: fmt.Sprintf("scripted failure %d of model %s", status, model)}
	}
	if model == "fake-context-length" {
		return reply{}, &providerError{status: 400, kind: "context_length_exceeded", message: "This model's maximum context length is 8 tokens; the messages are longer."}
	}
	if len(turns) > 0 && turns[len(turns)-1].toolResult {
		return reply{text: "tool result: " + turns[len(turns)-1].text}, nil
	}
	last := ""
	for i := len(turns) - 1; i >= 0; i-- {
		if turns[i].role == "user" && !turns[i].toolResult {
			last = turns[i].text
			break
		}
	}
	if name, args, ok := askedTool(last, tools); ok {
		return reply{toolName: name, toolArgs: args}, nil
	}
	return reply{text: "echo: " + last}, nil
}

// askedTool reads "call <tool> [with {json}]" from text, and finds the
// offered tool it names.
func askedTool(text string, tools []string) (string, json.RawMessage, bool) {
	_, rest, ok := strings.Cut(text, "call ")
	if !ok {
		return "", nil, false
	}
	want, after, _ := strings.Cut(rest, " ")
	want = strings.Trim(want, ".,;:!?")
	args := json.RawMessage(`{}`)
	if _, j, ok := strings.Cut(after, "with "); ok && json.Valid([]byte(strings.TrimSpace(j))) {
		args = json.RawMessage(strings.TrimSpace(j))
	}
	for _, t := range tools {
		if t == want || strings.HasSuffix(t, "__"+want) || strings.HasSuffix(t, "-"+want) || strings.HasSuffix(t, "_"+want) {
			return t, args, true
		}
	}
	return "", nil, false
}

// words counts tokens the fake way.
func words(s string) int { return len(strings.Fields(s)) }

// promptTokens counts a conversation's tokens.
func promptTokens(turns []turn) int {
	n := 0
	for _, t := range turns {
		n += words(t.text)
	}
	return n
}

// chunks splits text into the pieces a stream sends: a word each, with
// the space that follows it.
func chunks(text string) []string {
	var out []string
	for len(text) > 0 {
		i := strings.IndexByte(text, ' ')
		if i < 0 {
			out = append(out, text)
			break
		}
		out = append(out, text[:i+1])
		text = text[i+1:]
	}
	return out
}
