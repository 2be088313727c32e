package llmworkers

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, got, want []byte) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("got is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("want is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

// An OpenAI request with every mapped part becomes the Messages API body
// LiteLLM's mapping gives (golden: testdata/anthropic_request*.json);
// under 2026-10-21 the sampling parameters it refuses are dropped.
func TestAnthropicRequestGolden(t *testing.T) {
	in, _ := os.ReadFile("testdata/anthropic_request.json")
	want, _ := os.ReadFile("testdata/anthropic_request.want.json")
	got, _, err := anthropicBody(in, "claude-sonnet-4", "2023-06-01")
	if err != nil {
		t.Fatal(err)
	}
	jsonEqual(t, got, want)

	got, _, err = anthropicBody(in, "claude-sonnet-4", "2026-10-21")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(got, &m)
	if _, ok := m["temperature"]; ok {
		t.Fatal("temperature sent under 2026-10-21")
	}
	if _, ok := m["top_p"]; ok {
		t.Fatal("top_p sent under 2026-10-21")
	}
}

// What cannot be made into a Messages API request is refused naming the
// field.
func TestAnthropicRequestRefusals(t *testing.T) {
	for body, says := range map[string]string{
		`{"messages":[]}`: "messages: at least one",
		`{"messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`:                                       "messages[0].content[0].type",
		`{"messages":[{"role":"robot","content":"hi"}]}`:                                                          "messages[0].role",
		`{"messages":[{"role":"assistant","tool_calls":[{"id":"x","function":{"name":"f","arguments":"[1]"}}]}]}`: "messages[0].tool_calls[0].function.arguments",
		`{"messages":[{"role":"user","content":"hi"}],"tool_choice":"sometimes"}`:                                 "tool_choice",
		`{"messages":[{"role":"user","content":"hi"}],"max_tokens":"many"}`:                                       "not a chat completions request",
	} {
		if _, _, err := anthropicBody([]byte(body), "m", DefaultAnthropicVersion); err == nil || !strings.Contains(err.Error(), says) {
			t.Errorf("%s: %v, want an error saying %q", body, err, says)
		}
	}
}

// A Messages API answer becomes a chat.completion: joined text, tool_use
// blocks as tool calls, the stop reason as finish_reason, cached tokens
// counted as prompt tokens.
func TestAnthropicAnswerGolden(t *testing.T) {
	raw := []byte(`{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4","content":[
		{"type":"text","text":"Let me "},{"type":"text","text":"check."},
		{"type":"tool_use","id":"toolu_1","name":"demo__echo","input":{"text":"hi"}}],
		"stop_reason":"tool_use","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":7}}`)
	got, err := chatFromAnthropic(raw)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(got, &m)
	delete(m, "created")
	got, _ = json.Marshal(m)
	jsonEqual(t, got, []byte(`{"id":"msg_1","object":"chat.completion","model":"claude-sonnet-4",
		"choices":[{"index":0,"finish_reason":"tool_calls","message":{"role":"assistant","content":"Let me check.",
			"tool_calls":[{"id":"toolu_1","type":"function","function":{"name":"demo__echo","arguments":"{\"text\":\"hi\"}"}}]}}],
		"usage":{"prompt_tokens":15,"completion_tokens":7,"total_tokens":22}}`))
	if _, err := chatFromAnthropic([]byte(`{"type":"error"}`)); err == nil {
		t.Fatal("an error body read as an answer")
	}
}
