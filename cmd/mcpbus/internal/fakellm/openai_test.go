package fakellm

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

const testKey = "sk-fake-provider-key"

func serve(t *testing.T) (*Server, string) {
	t.Helper()
	s := &Server{APIKey: testKey}
	hs := httptest.NewServer(s)
	t.Cleanup(hs.Close)
	return s, hs.URL
}

func openaiClient(url, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// The official Go SDK reads the fake as it reads OpenAI: a chat answer with
// usage, a stream it accumulates, a tool call the scripted model asks for
// and the answer after its result, embeddings, the model list.
func TestOpenAIWireWithTheOfficialSDK(t *testing.T) {
	s, url := serve(t)
	c := openaiClient(url, testKey)
	ctx := context.Background()

	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "fake-gpt",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello there")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != "echo: hello there" || res.Usage.PromptTokens != 4 || res.Usage.CompletionTokens != 3 {
		t.Fatalf("chat: %q, usage %+v", got, res.Usage)
	}

	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "fake-gpt",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream these words")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != "echo: stream these words" || chunks < 5 || acc.Usage.CompletionTokens != 4 {
		t.Fatalf("stream: %q in %d chunks, usage %+v", got, chunks, acc.Usage)
	}

	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "demo__echo",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}}}})}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(`please call echo with {"text":"hi"}`)}
	res, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "fake-gpt", Messages: msgs, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	call := res.Choices[0].Message.ToolCalls
	if res.Choices[0].FinishReason != "tool_calls" || len(call) != 1 || call[0].Function.Name != "demo__echo" || call[0].Function.Arguments != `{"text":"hi"}` {
		t.Fatalf("tool call: %s %+v", res.Choices[0].FinishReason, call)
	}
	msgs = append(msgs, res.Choices[0].Message.ToParam(), openai.ToolMessage("hi", call[0].ID))
	res, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "fake-gpt", Messages: msgs, Tools: tools})
	if err != nil || res.Choices[0].Message.Content != "tool result: hi" {
		t.Fatalf("after the tool result: %+v %v", res, err)
	}

	emb, err := c.Embeddings.New(ctx, openai.EmbeddingNewParams{Model: "fake-embed",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"a b", "c"}}})
	if err != nil || len(emb.Data) != 2 || len(emb.Data[0].Embedding) != 8 || emb.Usage.PromptTokens != 3 {
		t.Fatalf("embeddings: %+v %v", emb, err)
	}
	models, err := c.Models.List(ctx)
	if err != nil || len(models.Data) != 3 || models.Data[0].ID != "fake-gpt" {
		t.Fatalf("models: %+v %v", models, err)
	}
	if n := s.Calls("fake-gpt"); n != 4 {
		t.Fatalf("fake-gpt counted %d calls, want 4", n)
	}
}

// Scripted failures come in OpenAI's error shape with their status; a
// wrong key is 401; the key never appears in an answer.
func TestOpenAIWireErrors(t *testing.T) {
	_, url := serve(t)
	ctx := context.Background()
	ask := func(c openai.Client, model string) *openai.Error {
		t.Helper()
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("%s: %v, want an API error", model, err)
		}
		return apiErr
	}
	c := openaiClient(url, testKey)
	if e := ask(c, "fake-error-429"); e.StatusCode != 429 || e.Type != "rate_limit_error" || e.Code != "rate_limit_exceeded" || e.Response.Header.Get("Retry-After") == "" {
		t.Fatalf("429: %d %s %s", e.StatusCode, e.Type, e.Code)
	}
	if e := ask(c, "fake-error-503"); e.StatusCode != 503 {
		t.Fatalf("503: %d", e.StatusCode)
	}
	if e := ask(c, "fake-context-length"); e.StatusCode != 400 || e.Code != "context_length_exceeded" {
		t.Fatalf("context length: %d %s", e.StatusCode, e.Code)
	}
	if e := ask(openaiClient(url, "sk-wrong"), "fake-gpt"); e.StatusCode != 401 || strings.Contains(e.RawJSON(), "sk-") {
		t.Fatalf("wrong key: %d %s", e.StatusCode, e.RawJSON())
	}
}

// Azure's deployments URL: the deployment names the model, api-key
// carries the key, api-version is required.
func TestAzureWire(t *testing.T) {
	_, url := serve(t)
	post := func(path, key string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url+path, strings.NewReader(`{"messages":[{"role":"user","content":"hi azure"}]}`))
		req.Header.Set("Api-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		b, _ := json.Marshal(body)
		return resp.StatusCode, string(b)
	}
	if st, body := post("/openai/deployments/fake-gpt/chat/completions?api-version=2024-10-21", testKey); st != 200 || !strings.Contains(body, `"content":"echo: hi azure"`) || !strings.Contains(body, `"model":"fake-gpt"`) {
		t.Fatalf("azure: %d %s", st, body)
	}
	if st, _ := post("/openai/deployments/fake-gpt/chat/completions", testKey); st != 404 {
		t.Fatalf("no api-version: %d, want 404 as Azure", st)
	}
	if st, _ := post("/openai/deployments/fake-gpt/chat/completions?api-version=2024-10-21", "wrong"); st != 401 {
		t.Fatalf("wrong api-key: %d", st)
	}
}
