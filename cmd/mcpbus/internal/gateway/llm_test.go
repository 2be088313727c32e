package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/fakellm"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
)

// The provider key the fake checks, and a wrong one a deployment holds:
// neither may reach a caller or a log (the suite's secret scan).
const (
	llmProviderKey = "sk-provider-key-for-the-fake-0001"
	llmWrongKey    = "sk-wrong-provider-key-0002"
)

// llmGateway starts the fake provider and a gateway with deployments on
// it: gpt-4o (OpenAI), gpt-eu (Azure), broken (a provider failing with
// 500), badkey (a deployment whose key the provider refuses), and
// claude (Anthropic's wire, translated both ways).
func llmGateway(t *testing.T) (*testGateway, *fakellm.Server) {
	t.Helper()
	fake := &fakellm.Server{APIKey: llmProviderKey}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	cfg := `
general_settings:
  master_key: ` + master + `
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/fake-gpt, api_base: ` + hs.URL + `/v1, api_key: os.environ/FAKE_KEY}
  - model_name: gpt-eu
    litellm_params: {model: azure/eu-deployment, api_base: ` + hs.URL + `, api_key: os.environ/FAKE_KEY, api_version: "2024-10-21"}
  - model_name: broken
    litellm_params: {model: openai/fake-error-500, api_base: ` + hs.URL + `/v1, api_key: os.environ/FAKE_KEY}
  - model_name: badkey
    litellm_params: {model: openai/fake-gpt, api_base: ` + hs.URL + `/v1, api_key: os.environ/WRONG_KEY}
  - model_name: claude
    litellm_params: {model: anthropic/claude-sonnet-4, api_base: ` + hs.URL + `, api_key: os.environ/FAKE_KEY}
`
	g := startGateway(t, cfg, map[string]string{"FAKE_KEY": llmProviderKey, "WRONG_KEY": llmWrongKey})
	return g, fake
}

// llmClient is the official Go SDK pointed at the gateway, recording every
// answer body for the secret scan.
func llmClient(g *testGateway, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(g.URL()+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0),
		option.WithHTTPClient(&http.Client{Transport: scannedTransport{}}))
}

// scannedTransport records each answer body for the secret scan, as the
// client reads it (a stream is not held back) and whole once it is closed.
type scannedTransport struct{}

func (scannedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &scannedBody{ReadCloser: resp.Body}
	return resp, nil
}

type scannedBody struct {
	io.ReadCloser
	seen bytes.Buffer
}

func (b *scannedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.seen.Write(p[:n])
	return n, err
}

func (b *scannedBody) Close() error {
	recordBody(b.seen.Bytes())
	return b.ReadCloser.Close()
}

// A key limited to some models sees only those in /v1/models and is
// refused the others with LiteLLM's 403; chat answers come back through
// the bus as JSON and as a stream of chunks, from OpenAI and Azure
// deployments, with the provider key set by the worker alone.
func TestLLMChatThroughTheBus(t *testing.T) {
	g, fake := llmGateway(t)
	ctx := context.Background()
	limited := generateKey(t, g.URL(), map[string]any{"key_alias": "llm-dev", "models": []string{"gpt-4o"}})

	names := func(key string) []string {
		c := llmClient(g, key)
		page, err := c.Models.List(ctx)
		if err != nil {
			t.Fatalf("models: %v", err)
		}
		var out []string
		for _, m := range page.Data {
			out = append(out, m.ID)
		}
		return out
	}
	if got := names(master); !slices.Equal(got, []string{"gpt-4o", "gpt-eu", "broken", "badkey", "claude"}) {
		t.Fatalf("master key's models: %v", got)
	}
	if got := names(limited); !slices.Equal(got, []string{"gpt-4o"}) {
		t.Fatalf("limited key's models: %v", got)
	}

	c := llmClient(g, limited)
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello through the bus")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != "echo: hello through the bus" || res.Usage.TotalTokens == 0 {
		t.Fatalf("chat: %q usage %+v", got, res.Usage)
	}

	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream these five words please")}})
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if got := acc.Choices[0].Message.Content; got != "echo: stream these five words please" || chunks < 5 {
		t.Fatalf("stream: %q in %d chunks", got, chunks)
	}

	// The limited key may not use gpt-eu: 403 with LiteLLM's type, and
	// nothing reaches the provider.
	before := fake.Calls("eu-deployment")
	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-eu",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	apiErr := asOpenAIError(t, err, http.StatusForbidden)
	if apiErr.Type != "key_model_access_denied" || apiErr.Code != "403" || apiErr.Param != "model" || !strings.Contains(apiErr.Message, "gpt-eu") {
		t.Fatalf("denied: %+v", apiErr)
	}
	if fake.Calls("eu-deployment") != before {
		t.Fatal("a denied request reached the provider")
	}

	// The master key reaches the Azure deployment (api-key, api-version).
	mc := llmClient(g, master)
	res, err = mc.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-eu",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("azure")}})
	if err != nil || res.Choices[0].Message.Content != "echo: azure" {
		t.Fatalf("azure: %+v %v", res, err)
	}
}

// Errors are OpenAI's shape with the right status, and never carry the
// provider key: an unknown model 404, a failing provider 502, a refused
// deployment key 502 naming the deployment.
func TestLLMErrors(t *testing.T) {
	g, _ := llmGateway(t)
	ctx := context.Background()
	c := llmClient(g, master)
	chat := func(model string) error {
		_, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: model,
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		return err
	}
	if e := asOpenAIError(t, chat("gpt-5-nowhere"), http.StatusNotFound); e.Code != "404" || !strings.Contains(e.Message, "gpt-5-nowhere") {
		t.Fatalf("unknown model: %+v", e)
	}
	if e := asOpenAIError(t, chat("broken"), http.StatusBadGateway); e.Type != "api_error" || !strings.Contains(e.Message, "status 500") {
		t.Fatalf("provider failure: %+v", e)
	}
	e := asOpenAIError(t, chat("badkey"), http.StatusBadGateway)
	if !strings.Contains(e.Message, "credentials") || strings.Contains(e.Message, llmWrongKey) {
		t.Fatalf("refused deployment key: %+v", e)
	}
	// A stream whose provider fails before the first chunk is an error
	// status too, not an empty stream.
	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "broken",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	for stream.Next() {
		t.Fatal("a chunk from a failing provider")
	}
	asOpenAIError(t, stream.Err(), http.StatusBadGateway)

	// No key: 401 in the same shape.
	status, _, body := rest(t, http.MethodGet, g.URL()+"/v1/models", "", "")
	if status != http.StatusUnauthorized || !strings.Contains(body, `"code":"401"`) {
		t.Fatalf("no key: %d %s", status, body)
	}
}

func asOpenAIError(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	var e *openai.Error
	if !errors.As(err, &e) || e.StatusCode != status {
		t.Fatalf("got %v, want an OpenAI error with status %d", err, status)
	}
	return e
}

// Chunks go to the client as the provider sends them, not when it is done:
// the provider holds its second chunk until the client has the first. A
// client that leaves mid-stream ends the provider call.
func TestLLMStreamRelaysChunksAsTheyCome(t *testing.T) {
	release, gone := make(chan struct{}), make(chan struct{})
	provider := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		chunk := func(text string) {
			_, _ = io.WriteString(w, `data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"slow","choices":[{"index":0,"delta":{"content":"`+text+`"},"finish_reason":null}]}`+"\n\n")
			w.(http.Flusher).Flush()
		}
		chunk("first")
		select {
		case <-release:
		case <-r.Context().Done():
			close(gone)
			return
		}
		chunk(" second")
		select { // never released again: the client leaves
		case <-r.Context().Done():
			close(gone)
		case <-time.After(time.Minute):
		}
	}))
	t.Cleanup(provider.Close)
	g := startGateway(t, `
general_settings:
  master_key: `+master+`
model_list:
  - model_name: slow
    litellm_params: {model: openai/slow, api_base: `+provider.URL+`, api_key: os.environ/FAKE_KEY}
`, map[string]string{"FAKE_KEY": llmProviderKey})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard, not a measure
	defer cancel()
	c := llmClient(g, master)
	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "slow",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if !stream.Next() || stream.Current().Choices[0].Delta.Content != "first" {
		t.Fatalf("first chunk: %v", stream.Err())
	}
	close(release)
	if !stream.Next() || stream.Current().Choices[0].Delta.Content != " second" {
		t.Fatalf("second chunk: %v", stream.Err())
	}
	cancel() // the client leaves
	select {
	case <-gone:
	case <-time.After(20 * time.Second):
		t.Fatal("the provider call went on after its client left")
	}
}

// router_settings apply through the bus: a group whose provider fails
// falls back to another group, which answers, and says so in LiteLLM's
// headers; a context-window error goes to context_window_fallbacks.
func TestLLMFallbacksThroughTheBus(t *testing.T) {
	fake := &fakellm.Server{APIKey: llmProviderKey}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	deployment := func(name, model string) string {
		return `  - model_name: ` + name + `
    litellm_params: {model: openai/` + model + `, api_base: ` + hs.URL + `/v1, api_key: os.environ/FAKE_KEY}
`
	}
	g := startGateway(t, `
general_settings:
  master_key: `+master+`
model_list:
`+deployment("flaky", "fake-error-503")+deployment("small", "fake-context-length")+deployment("steady", "fake-gpt")+`
router_settings:
  num_retries: 1
  fallbacks: [{"flaky": ["steady"]}]
  context_window_fallbacks: [{"small": ["steady"]}]
`, map[string]string{"FAKE_KEY": llmProviderKey})
	for _, model := range []string{"flaky", "small"} {
		status, h, body := rest(t, http.MethodPost, g.URL()+"/v1/chat/completions", master, `{"model":"`+model+`","messages":[{"role":"user","content":"still here"}]}`)
		if status != http.StatusOK || !strings.Contains(body, "echo: still here") || h.Get("X-Litellm-Model-Group") != "steady" || h.Get("X-Litellm-Model-Id") == "" {
			t.Fatalf("%s: %d %s, group %q", model, status, body, h.Get("X-Litellm-Model-Group"))
		}
	}
	if n := fake.Calls("fake-error-503"); n != 2 {
		t.Fatalf("the failing deployment was asked %d times, want 2 (num_retries 1)", n)
	}
	if n := fake.Calls("fake-context-length"); n != 1 {
		t.Fatalf("a context-window error was retried: %d calls", n)
	}
}

// An Anthropic deployment answers OpenAI's SDK as an OpenAI model would:
// the request made into a Messages API request, the answer, the stream and
// tool calls made back, through the bus, with the provider key set by the
// worker as x-api-key.
func TestLLMAnthropicThroughTheBus(t *testing.T) {
	g, fake := llmGateway(t)
	ctx := context.Background()
	c := llmClient(g, master)
	res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "claude",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.SystemMessage("be brief"), openai.UserMessage("hello claude")}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Choices[0].Message.Content; got != "echo: hello claude" || res.Choices[0].FinishReason != "stop" || res.Usage.PromptTokens == 0 {
		t.Fatalf("chat: %q %s usage %+v", got, res.Choices[0].FinishReason, res.Usage)
	}
	if fake.Calls("claude-sonnet-4") != 1 {
		t.Fatalf("the Anthropic wire was not used: %d calls", fake.Calls("claude-sonnet-4"))
	}

	stream := c.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "claude",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("stream from anthropic now")},
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
	if got := acc.Choices[0].Message.Content; got != "echo: stream from anthropic now" || chunks < 5 || acc.Usage.CompletionTokens == 0 {
		t.Fatalf("stream: %q in %d chunks, usage %+v", got, chunks, acc.Usage)
	}

	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "demo__echo",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"text": map[string]any{"type": "string"}}}})}
	msgs := []openai.ChatCompletionMessageParamUnion{openai.UserMessage(`please call demo__echo with {"text":"via claude"}`)}
	for _, streamed := range []bool{false, true} {
		var msg openai.ChatCompletionMessage
		var finish string
		params := openai.ChatCompletionNewParams{Model: "claude", Messages: msgs, Tools: tools}
		if streamed {
			s := c.Chat.Completions.NewStreaming(ctx, params)
			var acc openai.ChatCompletionAccumulator
			for s.Next() {
				acc.AddChunk(s.Current())
			}
			if err := s.Err(); err != nil {
				t.Fatal(err)
			}
			msg, finish = acc.Choices[0].Message, acc.Choices[0].FinishReason
		} else {
			res, err := c.Chat.Completions.New(ctx, params)
			if err != nil {
				t.Fatal(err)
			}
			msg, finish = res.Choices[0].Message, res.Choices[0].FinishReason
		}
		if finish != "tool_calls" || len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "demo__echo" || msg.ToolCalls[0].Function.Arguments != `{"text":"via claude"}` {
			t.Fatalf("tool call (streamed %v): %s %+v", streamed, finish, msg.ToolCalls)
		}
		next := append(append([]openai.ChatCompletionMessageParamUnion{}, msgs...), msg.ToParam(), openai.ToolMessage("via claude", msg.ToolCalls[0].ID))
		res, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "claude", Messages: next, Tools: tools})
		if err != nil || res.Choices[0].Message.Content != "tool result: via claude" {
			t.Fatalf("after the tool result (streamed %v): %+v %v", streamed, res, err)
		}
	}
}

// Spend is counted and limited: an answer's tokens and cost (the
// deployment's prices) reach the usage stream beside MCP calls' and the
// key's budget, and a key over its max_budget gets LiteLLM's 429
// budget_exceeded while another key still gets answers.
func TestLLMBudgetAndUsage(t *testing.T) {
	fake := &fakellm.Server{APIKey: llmProviderKey}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	g := startGateway(t, `
general_settings:
  master_key: `+master+`
model_list:
  - model_name: priced
    litellm_params: {model: openai/fake-gpt, api_base: `+hs.URL+`/v1, api_key: os.environ/FAKE_KEY,
                     input_cost_per_token: 0.001, output_cost_per_token: 0.002}
`, map[string]string{"FAKE_KEY": llmProviderKey})
	budgeted := generateKey(t, g.URL(), map[string]any{"key_alias": "budgeted", "max_budget": 0.01})
	other := generateKey(t, g.URL(), map[string]any{"key_alias": "other"})
	chat := func(key string) (int, string) {
		status, _, body := rest(t, http.MethodPost, g.URL()+"/v1/chat/completions", key, `{"model":"priced","messages":[{"role":"user","content":"count me"}]}`)
		return status, body
	}
	// "count me": 2 prompt tokens and 3 completion tokens ("echo: count me")
	// in the fake's count: 0.002 + 0.006 = 0.008 USD, under 0.01; a second
	// answer takes the key over it, and the third is refused.
	for i := 0; i < 2; i++ {
		if status, body := chat(budgeted); status != http.StatusOK {
			t.Fatalf("call %d: %d %s", i, status, body)
		}
	}
	bustest.Eventually(t, 10*time.Second, "the budget to be spent", func() error {
		status, body := chat(budgeted)
		if status != http.StatusTooManyRequests {
			return fmt.Errorf("status %d: %s", status, body)
		}
		if !strings.Contains(body, `"type":"budget_exceeded"`) || !strings.Contains(body, `"code":"429"`) || !strings.Contains(body, "Key=budgeted") {
			t.Fatalf("over budget: %s", body)
		}
		return nil
	})
	if status, body := chat(other); status != http.StatusOK {
		t.Fatalf("another key: %d %s", status, body)
	}

	// The usage stream has the LLM calls, with tokens, cost and deployment.
	nc := roleConn(t, g.Gateway, bus.RoleUsage)
	var llm []bus.UsageEvent
	bustest.Eventually(t, 10*time.Second, "LLM usage events", func() error {
		llm = nil
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := bus.ReadUsage(ctx, nc, bus.UsageFilter("", bus.LLMUsageServer, ""), bus.UsageStart{}, false, func(m bus.UsageMsg) error {
			recordBody(m.Data)
			var ev bus.UsageEvent
			if err := json.Unmarshal(m.Data, &ev); err != nil {
				return err
			}
			if ev.Status == "ok" {
				llm = append(llm, ev)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return bustest.AtLeast("ok LLM events", len(llm), 3)
	})
	e := llm[0]
	if e.Tool != "priced" || e.Method != bus.LLMUsageMethod || e.PromptTokens != 2 || e.CompletionTokens != 3 || e.Deployment == "" ||
		e.Cost < 0.0079 || e.Cost > 0.0081 || e.KeyAlias != "budgeted" || e.BytesIn == 0 {
		t.Fatalf("usage event: %+v", e)
	}
}
