package conformance

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestSamplingRoundTrip(t *testing.T) {
	_, url := serve(t)
	var got *mcp.CreateMessageParams
	cs := connect(t, url, &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			got = req.Params
			return &mcp.CreateMessageResult{Role: "assistant", Model: "test-model",
				Content: &mcp.TextContent{Text: "the answer is 42"}}, nil
		},
	})
	text := onlyText(t, call(t, cs, "test_sampling", map[string]any{"prompt": "what is six times seven?"}))
	if text != "LLM response: the answer is 42" {
		t.Errorf("test_sampling should return the client's answer, got %q", text)
	}
	if got == nil || got.MaxTokens != 100 || len(got.Messages) != 1 || got.Messages[0].Role != "user" ||
		got.Messages[0].Content.(*mcp.TextContent).Text != "what is six times seven?" {
		t.Errorf("sampling request should carry the prompt as one user message with maxTokens 100: %s", mustJSON(t, got))
	}
}

func TestSamplingWithoutCapabilityIsAToolError(t *testing.T) {
	_, url := serve(t)
	cs := connect(t, url, nil)
	res := call(t, cs, "test_sampling", map[string]any{"prompt": "hi"})
	if !res.IsError || !strings.Contains(mustJSON(t, res.Content), "sampling capability") {
		t.Errorf("without the sampling capability the tool should fail naming it, got %s", mustJSON(t, res))
	}
}

func TestElicitationRoundTrip(t *testing.T) {
	_, url := serve(t)
	var mu sync.Mutex
	requests := map[string]*mcp.ElicitParams{}
	answers := map[string]map[string]any{
		"Who are you?": {"username": "ada", "email": "ada@example.com"},
	}
	cs := connect(t, url, &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			mu.Lock()
			requests[req.Params.Message] = req.Params
			mu.Unlock()
			if a, ok := answers[req.Params.Message]; ok {
				return &mcp.ElicitResult{Action: "accept", Content: a}, nil
			}
			return &mcp.ElicitResult{Action: "decline"}, nil
		},
	})

	text := onlyText(t, call(t, cs, "test_elicitation", map[string]any{"message": "Who are you?"}))
	if want := `User response: action=accept, content={"email":"ada@example.com","username":"ada"}`; text != want {
		t.Errorf("test_elicitation = %q, want %q", text, want)
	}
	schema, _ := requests["Who are you?"].RequestedSchema.(map[string]any)
	if req, _ := schema["required"].([]any); len(req) != 2 {
		t.Errorf("elicitation schema should require username and email: %v", schema)
	}

	// A declined elicitation is reported, not an error.
	if text := onlyText(t, call(t, cs, "test_elicitation_sep1034_defaults", nil)); !strings.Contains(text, "action=decline") {
		t.Errorf("declined elicitation should be reported, got %q", text)
	}
	if text := onlyText(t, call(t, cs, "test_elicitation_sep1330_enums", nil)); !strings.Contains(text, "action=decline") {
		t.Errorf("declined elicitation should be reported, got %q", text)
	}
	mu.Lock()
	defer mu.Unlock()
	var defaults, enums map[string]any
	for _, p := range requests {
		props, _ := p.RequestedSchema.(map[string]any)["properties"].(map[string]any)
		if _, ok := props["verified"]; ok {
			defaults = props
		}
		if _, ok := props["titledMulti"]; ok {
			enums = props
		}
	}
	if defaults == nil || defaults["age"].(map[string]any)["default"] != float64(30) ||
		defaults["status"].(map[string]any)["default"] != "active" || defaults["verified"].(map[string]any)["default"] != true {
		t.Errorf("SEP-1034 schema should carry defaults: %v", defaults)
	}
	if enums == nil || enums["legacyEnum"].(map[string]any)["enumNames"] == nil ||
		enums["titledSingle"].(map[string]any)["oneOf"] == nil ||
		enums["titledMulti"].(map[string]any)["items"].(map[string]any)["anyOf"] == nil {
		t.Errorf("SEP-1330 schema should carry every enum variant: %v", enums)
	}
}

func TestElicitationWithoutCapabilityIsAToolError(t *testing.T) {
	_, url := serve(t)
	cs := connect(t, url, nil)
	res := call(t, cs, "test_elicitation", map[string]any{"message": "hi"})
	if !res.IsError || !strings.Contains(mustJSON(t, res.Content), "elicitation capability") {
		t.Errorf("without the elicitation capability the tool should fail naming it, got %s", mustJSON(t, res))
	}
}

func TestProgress(t *testing.T) {
	_, url := serve(t)
	var mu sync.Mutex
	var got []*mcp.ProgressNotificationParams
	cs := connect(t, url, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			mu.Lock()
			got = append(got, req.Params)
			mu.Unlock()
		},
	})
	params := &mcp.CallToolParams{Name: "test_tool_with_progress"}
	params.SetProgressToken("tok-1")
	res, err := cs.CallTool(testCtx(t), params)
	if err != nil {
		t.Fatal(err)
	}
	onlyText(t, res)
	waitFor(&mu, func() bool { return len(got) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	var values []float64
	for _, p := range got {
		if p.ProgressToken != "tok-1" || p.Total != 100 {
			t.Errorf("progress should carry the request's token and total 100: %s", mustJSON(t, p))
		}
		values = append(values, p.Progress)
	}
	if !slices.Equal(values, []float64{0, 50, 100}) {
		t.Errorf("progress values = %v, want [0 50 100]", values)
	}
}

func TestLoggingFollowsTheSessionLevel(t *testing.T) {
	_, url := serve(t)
	var mu sync.Mutex
	var msgs []string
	cs := connect(t, url, &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, req *mcp.LoggingMessageRequest) {
			mu.Lock()
			msgs = append(msgs, string(req.Params.Level)+":"+req.Params.Data.(string))
			mu.Unlock()
		},
	})
	ctx := testCtx(t)
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "error"}); err != nil {
		t.Fatal(err)
	}
	onlyText(t, call(t, cs, "test_tool_with_logging", nil))
	// A message handled after this check still shows: the exact list after
	// the next call (at debug) would hold it.
	mu.Lock()
	if len(msgs) != 0 {
		t.Errorf("level error should suppress info messages, got %v", msgs)
	}
	mu.Unlock()

	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	onlyText(t, call(t, cs, "test_tool_with_logging", nil))
	waitFor(&mu, func() bool { return len(msgs) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	want := []string{"info:Tool execution started", "info:Tool processing data", "info:Tool execution completed"}
	if !slices.Equal(msgs, want) {
		t.Errorf("log messages = %v, want %v", msgs, want)
	}
}
