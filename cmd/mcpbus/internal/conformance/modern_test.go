package conformance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// answering are client options that answer every input request: an
// elicitation with name Alice, colour blue and ok; sampling with "Paris";
// roots with one root.
func answering() *mcp.ClientOptions {
	return &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{
				"name": "Alice", "color": "blue", "ok": true, "context": "testing",
			}}, nil
		},
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Role: "assistant", Model: "test", Content: &mcp.TextContent{Text: "Paris"}}, nil
		},
	}
}

func connectModern(t *testing.T, url string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	cs := connectVersion(t, url, modernVersion, opts)
	if v := cs.InitializeResult().ProtocolVersion; v != modernVersion {
		t.Fatalf("the go-sdk client negotiated %q, want %s", v, modernVersion)
	}
	return cs
}

func TestModernClientDiscoversAndCalls(t *testing.T) {
	_, url := serve(t)
	cs := connectModern(t, url, nil)
	if cs.ID() != "" {
		t.Errorf("a 2026-07-28 client got session %q, want none", cs.ID())
	}
	if got := onlyText(t, call(t, cs, "test_simple_text", nil)); got != simpleText {
		t.Errorf("test_simple_text = %q", got)
	}
	tools, err := cs.ListTools(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tools.TTLMs != listTTLMs || tools.CacheScope != "public" {
		t.Errorf("modern tools/list: ttlMs %d, cacheScope %q; want %d, public", tools.TTLMs, tools.CacheScope, listTTLMs)
	}
	read := func(uri string) *mcp.ReadResourceResult {
		res, err := cs.ReadResource(testCtx(t), &mcp.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		return res
	}
	if r := read(staticTextURI); r.TTLMs != listTTLMs {
		t.Errorf("read %s: ttlMs %d, want %d", staticTextURI, r.TTLMs, listTTLMs)
	}
	if r := read(watchedURI); r.TTLMs != 0 {
		t.Errorf("read %s (changes): ttlMs %d, want 0", watchedURI, r.TTLMs)
	}

	// The session era keeps go-sdk's defaults.
	legacy, err := connect(t, url, nil).ListTools(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if legacy.TTLMs != 0 {
		t.Errorf("legacy tools/list: ttlMs %d, want 0 as before", legacy.TTLMs)
	}
}

// The go-sdk client fulfils input_required results itself and calls again
// (SEP-2322), so each MRTR tool completes with the answers in its text.
func TestModernMRTRRoundTrips(t *testing.T) {
	_, url := serve(t)
	cs := connectModern(t, url, answering())
	for tool, want := range map[string]string{
		"test_input_required_result_elicitation":     "Hello, Alice!",
		"test_input_required_result_sampling":        "Sampling response: Paris",
		"test_input_required_result_list_roots":      "Found 0 root(s)",
		"test_input_required_result_request_state":   "state-ok: requestState validated",
		"test_input_required_result_tampered_state":  "integrity-ok: requestState verified",
		"test_input_required_result_multiple_inputs": "Name: Alice; Greeting: Paris; Roots: 0",
		"test_input_required_result_multi_round":     "Multi-round complete for Alice who likes blue",
	} {
		if got := onlyText(t, call(t, cs, tool, nil)); got != want {
			t.Errorf("%s = %q, want %q", tool, got, want)
		}
	}
	res, err := cs.GetPrompt(testCtx(t), &mcp.GetPromptParams{Name: "test_input_required_result_prompt"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Messages) != 1 || mustJSON(t, res.Messages[0].Content) != `{"type":"text","text":"Prompt with context: testing"}` {
		t.Errorf("test_input_required_result_prompt = %s", mustJSON(t, res))
	}
}

// Without the client's automatic retries, the first round is visible: an
// input_required result with a sealed requestState, which the tool refuses
// (-32602) once changed.
func TestTamperedRequestStateIsInvalidParams(t *testing.T) {
	_, url := serve(t)
	opts := answering()
	opts.MultiRoundTrip = &mcp.MultiRoundTripOptions{Disabled: true}
	cs := connectModern(t, url, opts)
	const tool = "test_input_required_result_tampered_state"
	first := call(t, cs, tool, nil)
	if !first.NeedsInput() || first.RequestState == "" || first.InputRequests["confirm"] == nil {
		t.Fatalf("round 1 should ask for confirm with a requestState: %s", mustJSON(t, first))
	}
	retry := func(state string) (*mcp.CallToolResult, error) {
		return cs.CallTool(testCtx(t), &mcp.CallToolParams{
			Name:           tool,
			InputResponses: mcp.InputResponseMap{"confirm": &mcp.ElicitResult{Action: "accept", Content: map[string]any{"ok": true}}},
			RequestState:   state,
		})
	}
	for _, bad := range []string{first.RequestState + "-TAMPERED", "x" + first.RequestState[1:], "not-a-state"} {
		_, err := retry(bad)
		var werr *jsonrpc.Error
		if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("retry with requestState %q: %v, want -32602", bad, err)
		}
	}
	// A state sealed for another tool is refused too.
	other := call(t, cs, "test_input_required_result_request_state", nil)
	if _, err := retry(other.RequestState); err == nil {
		t.Errorf("a requestState of another tool was accepted")
	}
	res, err := retry(first.RequestState)
	if err != nil || res.NeedsInput() {
		t.Fatalf("retry with the state as sent: %v %s", err, mustJSON(t, res))
	}
}

func TestMissingCapabilityIsMinus32021(t *testing.T) {
	_, url := serve(t)
	_, err := connectModern(t, url, nil).CallTool(testCtx(t), &mcp.CallToolParams{Name: "test_missing_capability"})
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) || werr.Code != mcp.CodeMissingRequiredClientCapabilities ||
		string(werr.Data) != `{"requiredCapabilities":{"sampling":{}}}` {
		t.Fatalf("without sampling: %v (data %s), want -32021 naming sampling", err, dataOf(werr))
	}
	withSampling := connectModern(t, url, answering()) // declares sampling: it has a handler
	if got := onlyText(t, call(t, withSampling, "test_missing_capability", nil)); !strings.Contains(got, "sampling") {
		t.Errorf("with sampling: %q", got)
	}
}

func dataOf(e *jsonrpc.Error) string {
	if e == nil {
		return ""
	}
	return string(e.Data)
}

// A legacy session calling an MRTR tool is asked by the server itself
// (go-sdk bridges: elicitation/create on the session, then the handler
// again), so the one-round tools work in both eras.
func TestLegacyClientGetsMRTRBridged(t *testing.T) {
	_, url := serve(t)
	cs := connect(t, url, answering())
	if got := onlyText(t, call(t, cs, "test_input_required_result_elicitation", nil)); got != "Hello, Alice!" {
		t.Errorf("legacy test_input_required_result_elicitation = %q", got)
	}
}

// test_trigger_tool_change reaches a modern client's subscriptions/listen
// stream (the go-sdk client opens one when it has a list handler) and a
// legacy session alike; the tool list stays the same.
func TestTriggerReachesBothEras(t *testing.T) {
	_, url := serve(t)
	var mu sync.Mutex
	got := map[string]int{}
	note := func(kind string) { mu.Lock(); got[kind]++; mu.Unlock() }
	opts := func(era string) *mcp.ClientOptions {
		return &mcp.ClientOptions{
			ToolListChangedHandler:   func(context.Context, *mcp.ToolListChangedRequest) { note(era + " tools") },
			PromptListChangedHandler: func(context.Context, *mcp.PromptListChangedRequest) { note(era + " prompts") },
		}
	}
	modern := connectModern(t, url, opts("modern"))
	connect(t, url, opts("legacy"))
	before, err := modern.ListTools(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	call(t, modern, triggerToolName, nil)
	call(t, modern, triggerPromptName, nil)
	want := []string{"modern tools", "modern prompts", "legacy tools", "legacy prompts"}
	waitFor(&mu, func() bool {
		for _, k := range want {
			if got[k] == 0 {
				return false
			}
		}
		return true
	})
	mu.Lock()
	for _, k := range want {
		if got[k] == 0 {
			t.Errorf("no %s list_changed; got %v", k, got)
		}
	}
	mu.Unlock()
	after, err := modern.ListTools(testCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names(after.Tools)) != fmt.Sprint(names(before.Tools)) {
		t.Errorf("the trigger changed the tool list: %v -> %v", names(before.Tools), names(after.Tools))
	}
}

func names(tools []*mcp.Tool) []string {
	var n []string
	for _, t := range tools {
		n = append(n, t.Name)
	}
	return n
}
