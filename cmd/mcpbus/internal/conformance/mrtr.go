package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The MRTR tools and prompt of the input-required-result-* scenarios
// (SEP-2322): instead of sending elicitation/create, sampling/createMessage
// or roots/list to the client mid-call, a handler returns InputRequests (and
// maybe a requestState) and the client calls again with the answers in
// inputResponses. go-sdk marks such a result resultType "input_required" for
// a 2026-07-28 request; for a legacy session it asks the client itself and
// calls the handler once more (mrtr.go serverMultiRoundTripMiddleware), so
// the one-round tools work in both eras.

// Schemas of the input requests, sent verbatim.
var (
	nameSchema    = json.RawMessage(`{"type":"object","properties":{"name":{"type":"string"}},"required":["name"]}`)
	colorSchema   = json.RawMessage(`{"type":"object","properties":{"color":{"type":"string"}},"required":["color"]}`)
	confirmSchema = json.RawMessage(`{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}`)
	contextSchema = json.RawMessage(`{"type":"object","properties":{"context":{"type":"string"}},"required":["context"]}`)
)

func askName(message string) *mcp.ElicitParams {
	return &mcp.ElicitParams{Message: message, RequestedSchema: nameSchema}
}

func askColor() *mcp.ElicitParams {
	return &mcp.ElicitParams{Message: "Step 2: What is your favorite color?", RequestedSchema: colorSchema}
}

func askConfirm() *mcp.ElicitParams {
	return &mcp.ElicitParams{Message: "Please confirm", RequestedSchema: confirmSchema}
}

func askSample(text string, maxTokens int64) *mcp.CreateMessageParams {
	return &mcp.CreateMessageParams{
		Messages:  []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: text}}},
		MaxTokens: maxTokens,
	}
}

func inputRequired(reqs mcp.InputRequestMap, state string) (*mcp.CallToolResult, any, error) {
	return &mcp.CallToolResult{InputRequests: reqs, RequestState: state}, nil, nil
}

func (f *Fixture) addMRTR(s *mcp.Server) {
	add := func(name, desc string, h mcp.ToolHandlerFor[noInput, any]) {
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: "MRTR (SEP-2322): " + desc}, h)
	}
	add("test_input_required_result_elicitation", "asks for a name (elicitation, key user_name), then greets it.", elicitationMRTR)
	add("test_input_required_result_sampling", "asks an LLM (sampling, key capital_question), then returns its answer.", samplingMRTR)
	add("test_input_required_result_list_roots", "asks for the client's roots (roots/list, key client_roots), then counts them.", listRootsMRTR)
	add("test_input_required_result_request_state", "asks for a confirmation with a sealed requestState; completes with state-ok once both come back.", f.requestStateMRTR)
	add("test_input_required_result_multiple_inputs", "asks for a name, an LLM greeting and the roots in one round, with a sealed requestState.", f.multipleInputsMRTR)
	add("test_input_required_result_multi_round", "two elicitation rounds (name, then colour), the round kept in a sealed requestState.", f.multiRoundMRTR)
	add("test_input_required_result_tampered_state", "asks for a confirmation with a sealed requestState; a changed requestState is -32602.", f.tamperedStateMRTR)
	add("test_input_required_result_capabilities", "asks only for the inputs the request's client capabilities cover.", capabilitiesMRTR)
	s.AddPrompt(&mcp.Prompt{
		Name:        "test_input_required_result_prompt",
		Description: "MRTR (SEP-2322): asks for context (elicitation, key user_context), then returns a prompt using it.",
	}, promptMRTR)
}

// accepted returns the content of an accepted elicitation answer under key.
func accepted(rs mcp.InputResponseMap, key string) map[string]any {
	if r, ok := rs[key].(*mcp.ElicitResult); ok && r != nil && r.Action == "accept" && r.Content != nil {
		return r.Content
	}
	return nil
}

// acceptedString returns the non-empty string field of an accepted elicitation answer.
func acceptedString(rs mcp.InputResponseMap, key, field string) (string, bool) {
	s, _ := accepted(rs, key)[field].(string)
	return s, s != ""
}

// sampled returns the first text of a sampling answer under key.
func sampled(rs mcp.InputResponseMap, key string) (string, bool) {
	var content []mcp.Content
	switch r := rs[key].(type) {
	case *mcp.CreateMessageWithToolsResult:
		if r == nil {
			return "", false
		}
		content = r.Content
	case *mcp.CreateMessageResult:
		if r == nil {
			return "", false
		}
		content = []mcp.Content{r.Content}
	default:
		return "", false
	}
	for _, c := range content {
		if t, ok := c.(*mcp.TextContent); ok {
			return t.Text, true
		}
	}
	return "(non-text answer)", true
}

// roots returns a roots/list answer under key.
func roots(rs mcp.InputResponseMap, key string) (*mcp.ListRootsResult, bool) {
	r, ok := rs[key].(*mcp.ListRootsResult)
	return r, ok && r != nil
}

func elicitationMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if name, ok := acceptedString(req.Params.InputResponses, "user_name", "name"); ok {
		return textResult(fmt.Sprintf("Hello, %s!", name)), nil, nil
	}
	// First call, a missing or wrong key, an invalid answer: ask (again).
	return inputRequired(mcp.InputRequestMap{"user_name": askName("What is your name?")}, "")
}

func samplingMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if text, ok := sampled(req.Params.InputResponses, "capital_question"); ok {
		return textResult("Sampling response: " + text), nil, nil
	}
	return inputRequired(mcp.InputRequestMap{"capital_question": askSample("What is the capital of France?", 100)}, "")
}

func listRootsMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if r, ok := roots(req.Params.InputResponses, "client_roots"); ok {
		return textResult(fmt.Sprintf("Found %d root(s)", len(r.Roots))), nil, nil
	}
	return inputRequired(mcp.InputRequestMap{"client_roots": &mcp.ListRootsParams{}}, "")
}

// confirmMRTR is test_input_required_result_request_state and
// _tampered_state: round 1 asks for "confirm" with a sealed state; a retry
// with a state that fails its check is -32602; with a valid state and an
// accepted confirmation it completes with text.
func (f *Fixture) confirmMRTR(tool, done string, req *mcp.CallToolRequest) (*mcp.CallToolResult, any, error) {
	if state := req.Params.RequestState; state != "" {
		if _, err := f.state.open(tool, state); err != nil {
			return nil, nil, invalidState(tool)
		}
		if accepted(req.Params.InputResponses, "confirm") != nil {
			return textResult(done), nil, nil
		}
	}
	return inputRequired(mcp.InputRequestMap{"confirm": askConfirm()}, f.state.seal(mrtrState{Tool: tool, Round: 1}))
}

func (f *Fixture) requestStateMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	return f.confirmMRTR("test_input_required_result_request_state", "state-ok: requestState validated", req)
}

func (f *Fixture) tamperedStateMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	return f.confirmMRTR("test_input_required_result_tampered_state", "integrity-ok: requestState verified", req)
}

func (f *Fixture) multipleInputsMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	const tool = "test_input_required_result_multiple_inputs"
	rs := req.Params.InputResponses
	if state := req.Params.RequestState; state != "" {
		if _, err := f.state.open(tool, state); err != nil {
			return nil, nil, invalidState(tool)
		}
		name, okName := acceptedString(rs, "user_name", "name")
		greeting, okGreeting := sampled(rs, "greeting")
		r, okRoots := roots(rs, "client_roots")
		if okName && okGreeting && okRoots {
			return textResult(fmt.Sprintf("Name: %s; Greeting: %s; Roots: %d", name, greeting, len(r.Roots))), nil, nil
		}
	}
	return inputRequired(mcp.InputRequestMap{
		"user_name":    askName("What is your name?"),
		"greeting":     askSample("Generate a greeting", 50),
		"client_roots": &mcp.ListRootsParams{},
	}, f.state.seal(mrtrState{Tool: tool, Round: 1}))
}

func (f *Fixture) multiRoundMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	const tool = "test_input_required_result_multi_round"
	rs := req.Params.InputResponses
	round1 := func() (*mcp.CallToolResult, any, error) {
		return inputRequired(mcp.InputRequestMap{"step1": askName("Step 1: What is your name?")},
			f.state.seal(mrtrState{Tool: tool, Round: 1}))
	}
	state := req.Params.RequestState
	if state == "" {
		return round1()
	}
	st, err := f.state.open(tool, state)
	if err != nil {
		return nil, nil, invalidState(tool)
	}
	switch st.Round {
	case 1:
		name, ok := acceptedString(rs, "step1", "name")
		if !ok {
			return round1()
		}
		return inputRequired(mcp.InputRequestMap{"step2": askColor()}, f.state.seal(mrtrState{Tool: tool, Round: 2, Name: name}))
	default:
		color, ok := acceptedString(rs, "step2", "color")
		if !ok {
			return inputRequired(mcp.InputRequestMap{"step2": askColor()}, state)
		}
		return textResult(fmt.Sprintf("Multi-round complete for %s who likes %s", st.Name, color)), nil, nil
	}
}

// capabilitiesMRTR asks only for what the request's client capabilities
// cover (read from _meta on a 2026-07-28 request, from initialize on a
// legacy session): a client that declared none gets a complete result.
func capabilitiesMRTR(_ context.Context, req *mcp.CallToolRequest, _ noInput) (*mcp.CallToolResult, any, error) {
	if rs := req.Params.InputResponses; len(rs) > 0 {
		keys := make([]string, 0, len(rs))
		for k := range rs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return textResult("capabilities-ok: received " + strings.Join(keys, ",")), nil, nil
	}
	caps := req.ClientCapabilities()
	reqs := mcp.InputRequestMap{}
	if caps != nil && caps.Elicitation != nil {
		reqs["user_name"] = askName("What is your name?")
	}
	if caps != nil && caps.Sampling != nil {
		reqs["greeting"] = askSample("Generate a short greeting", 50)
	}
	if caps != nil && (caps.RootsV2 != nil || caps.Roots.ListChanged) {
		reqs["client_roots"] = &mcp.ListRootsParams{}
	}
	if len(reqs) == 0 {
		return textResult("No declared client capability supports an input request"), nil, nil
	}
	return inputRequired(reqs, "")
}

func promptMRTR(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
	if c, ok := acceptedString(req.Params.InputResponses, "user_context", "context"); ok {
		return prompt("A prompt with elicited context",
			&mcp.PromptMessage{Role: "user", Content: &mcp.TextContent{Text: "Prompt with context: " + c}}), nil
	}
	return &mcp.GetPromptResult{InputRequests: mcp.InputRequestMap{
		"user_context": &mcp.ElicitParams{Message: "What context should the prompt use?", RequestedSchema: contextSchema},
	}}, nil
}
