package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/fakellm"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"
)

// responsesGateway runs a gateway with the scripted model and the demo MCP
// server (its echo tool).
func responsesGateway(t *testing.T) *testGateway {
	t.Helper()
	fake := &fakellm.Server{APIKey: llmProviderKey}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	demoURL, _ := upstream(t, "demo")
	return startGateway(t, `
general_settings:
  master_key: `+master+`
mcp_servers:
  demo: {url: `+demoURL+`}
  other: {url: `+demoURL+`}
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/fake-gpt, api_base: `+hs.URL+`/v1, api_key: os.environ/FAKE_KEY}
  - model_name: embed
    litellm_params: {model: openai/fake-embed, api_base: `+hs.URL+`/v1, api_key: os.environ/FAKE_KEY}
`, map[string]string{"FAKE_KEY": llmProviderKey})
}

// respond posts a Responses request and decodes the answer.
func respond(t *testing.T, g *testGateway, key string, body map[string]any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	status, _, raw := rest(t, http.MethodPost, g.URL()+"/v1/responses", key, string(b))
	var out map[string]any
	_ = json.Unmarshal([]byte(raw), &out)
	if out == nil {
		out = map[string]any{"_raw": raw}
	}
	return status, out
}

// items are a response's output items by type, in order.
func items(resp map[string]any) (types []string, byType map[string][]map[string]any) {
	byType = map[string][]map[string]any{}
	out, _ := resp["output"].([]any)
	for _, o := range out {
		it := o.(map[string]any)
		typ, _ := it["type"].(string)
		types = append(types, typ)
		byType[typ] = append(byType[typ], it)
	}
	return types, byType
}

// The Responses API over a chat model, from the official Go SDK, and
// embeddings.
func TestLLMResponsesAndEmbeddings(t *testing.T) {
	g := responsesGateway(t)
	c := llmClient(g, master)
	ctx := context.Background()
	res, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4o", Instructions: openai.String("be brief"),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hello responses")}})
	if err != nil {
		t.Fatal(err)
	}
	if res.OutputText() != "echo: hello responses" || res.Status != "completed" || res.Usage.InputTokens == 0 {
		t.Fatalf("response: %q %s usage %+v", res.OutputText(), res.Status, res.Usage)
	}
	stream := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "gpt-4o",
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("stream a response")}})
	var text, last string
	for stream.Next() {
		ev := stream.Current()
		last = ev.Type
		if ev.Type == "response.output_text.delta" {
			text += ev.Delta
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text != "echo: stream a response" || last != "response.completed" {
		t.Fatalf("stream: %q, last event %s", text, last)
	}

	emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "embed",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one", "two"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(emb.Data) != 2 || len(emb.Data[0].Embedding) == 0 || emb.Usage.PromptTokens == 0 {
		t.Fatalf("embeddings: %d vectors, usage %+v", len(emb.Data), emb.Usage)
	}
}

// MCP tools of this gateway with any model: the model's call of the demo
// server's echo runs through the tool workers with the caller's identity,
// its result goes back to the model, and the answer carries OpenAI's
// mcp_list_tools, mcp_call and message items; without require_approval
// never, the call waits for the caller's approval, which a second request
// gives; a server_url elsewhere is refused; a key without the server gets
// no tools of it.
func TestLLMResponsesWithMCPTools(t *testing.T) {
	g := responsesGateway(t)
	mcp := func(url string, approval any) map[string]any {
		t := map[string]any{"type": "mcp", "server_label": "demo", "server_url": url}
		if approval != nil {
			t["require_approval"] = approval
		}
		return t
	}
	ask := `please call echo with {"text":"through the bus"}`
	status, resp := respond(t, g, master, map[string]any{"model": "gpt-4o", "input": ask,
		"tools": []any{mcp(g.URL()+"/mcp/demo", "never")}})
	types, by := items(resp)
	if status != http.StatusOK || strings.Join(types, ",") != "mcp_list_tools,mcp_call,message" {
		t.Fatalf("%d %v: %v", status, types, resp)
	}
	call := by["mcp_call"][0]
	if call["name"] != "echo" || call["output"] != "through the bus" || call["server_label"] != "demo" || call["status"] != "completed" {
		t.Fatalf("mcp_call: %v", call)
	}
	msg := by["message"][0]["content"].([]any)[0].(map[string]any)
	if msg["text"] != "tool result: through the bus" {
		t.Fatalf("message: %v", msg)
	}

	// Aggregated /mcp and LiteLLM's label: names prefixed by server.
	status, resp = respond(t, g, master, map[string]any{"model": "gpt-4o", "input": `please call demo__echo with {"text":"agg"}`,
		"tools": []any{mcp("litellm_proxy/mcp", "never")}})
	if _, by := items(resp); status != http.StatusOK || len(by["mcp_call"]) != 1 || by["mcp_call"][0]["name"] != "demo__echo" {
		t.Fatalf("aggregated: %d %v", status, resp)
	}

	// Approval: the call waits; the approval runs it.
	status, resp = respond(t, g, master, map[string]any{"model": "gpt-4o", "input": ask, "tools": []any{mcp(g.URL()+"/mcp/demo", nil)}})
	types, by = items(resp)
	if status != http.StatusOK || strings.Join(types, ",") != "mcp_list_tools,mcp_approval_request" {
		t.Fatalf("approval asked: %d %v", status, resp)
	}
	req := by["mcp_approval_request"][0]
	status, resp = respond(t, g, master, map[string]any{"model": "gpt-4o", "tools": []any{mcp(g.URL()+"/mcp/demo", nil)},
		"input": []any{map[string]any{"role": "user", "content": ask}, req,
			map[string]any{"type": "mcp_approval_response", "approval_request_id": req["id"], "approve": true}}})
	types, by = items(resp)
	if status != http.StatusOK || strings.Join(types, ",") != "mcp_list_tools,mcp_call,message" || by["mcp_call"][0]["approval_request_id"] != req["id"] {
		t.Fatalf("approved: %d %v", status, resp)
	}
	// Another key cannot use the approval.
	other := generateKey(t, g.URL(), map[string]any{"key_alias": "other-key"})
	status, resp = respond(t, g, other, map[string]any{"model": "gpt-4o", "tools": []any{mcp(g.URL()+"/mcp/demo", nil)},
		"input": []any{map[string]any{"type": "mcp_approval_response", "approval_request_id": req["id"], "approve": true}}})
	if status != http.StatusBadRequest || !strings.Contains(resp["error"].(map[string]any)["message"].(string), "approval_request_id") {
		t.Fatalf("another key's approval: %d %v", status, resp)
	}

	// Elsewhere: refused, naming it.
	status, resp = respond(t, g, master, map[string]any{"model": "gpt-4o", "input": ask, "tools": []any{mcp("https://evil.example/mcp", "never")}})
	if status != http.StatusBadRequest || !strings.Contains(resp["error"].(map[string]any)["message"].(string), "evil.example") {
		t.Fatalf("a server_url elsewhere: %d %v", status, resp)
	}

	// A key limited to other: demo's tools are not its to list or call.
	limited := generateKey(t, g.URL(), map[string]any{"key_alias": "only-other", "mcp_servers": []string{"other"}})
	status, resp = respond(t, g, limited, map[string]any{"model": "gpt-4o", "input": ask, "tools": []any{mcp(g.URL()+"/mcp/demo", "never")}})
	types, by = items(resp)
	if status != http.StatusOK || strings.Join(types, ",") != "mcp_list_tools,message" || by["mcp_list_tools"][0]["error"] == nil {
		t.Fatalf("a key without the server: %d %v", status, resp)
	}
}

// LiteLLM's way too: MCP tools on /v1/chat/completions run the same loop
// and answer with the model's last completion (usage summed), as JSON or
// as a stream; a tool needing approval is refused there, naming why.
func TestLLMChatWithMCPTools(t *testing.T) {
	g := responsesGateway(t)
	ctx := context.Background()
	c := llmClient(g, master)
	mcp := map[string]any{"type": "mcp", "server_label": "litellm", "server_url": "litellm_proxy/mcp/demo", "require_approval": "never"}
	params := openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(`please call echo with {"text":"chat via mcp"}`)}}
	params.SetExtraFields(map[string]any{"tools": []any{mcp}})
	res, err := c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != "tool result: chat via mcp" || res.Usage.TotalTokens == 0 {
		t.Fatalf("chat with MCP tools: %q usage %+v", got, res.Usage)
	}
	stream := c.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	if err := stream.Err(); err != nil || acc.Choices[0].Message.Content != "tool result: chat via mcp" {
		t.Fatalf("streamed: %q %v", acc.Choices[0].Message.Content, err)
	}

	delete(mcp, "require_approval")
	b, _ := json.Marshal(map[string]any{"model": "gpt-4o", "tools": []any{mcp},
		"messages": []any{map[string]any{"role": "user", "content": `please call echo with {"text":"x"}`}}})
	status, _, body := rest(t, http.MethodPost, g.URL()+"/v1/chat/completions", master, string(b))
	if status != http.StatusBadRequest || !strings.Contains(body, "require_approval") {
		t.Fatalf("a tool needing approval on chat completions: %d %s", status, body)
	}
}
