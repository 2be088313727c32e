package toolworkers

// Multi round-trip requests (SEP-2322) bridged for a caller of the session
// era: a 2026-07-28 upstream does not send elicitation/create,
// sampling/createMessage or roots/list to its client mid-call; it answers
// tools/call, prompts/get or resources/read with an input_required result
// naming what it needs, and expects the same request again with the
// answers in params.inputResponses (and its requestState echoed). A
// 2025-11-25 client knows nothing of that, but it can answer those very
// requests on its call's stream. So the worker asks it, each one as a
// server-to-client request (callRelay.Request, which checks the client's
// capabilities), and calls the upstream again, until a complete result, as
// go-sdk's own server does for such clients (mrtr.go there). Plan:
// docs/plans/mcp-2026-07-28.md, step 6.

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"

	"github.com/mcpbus/mcpbus/bus"
)

// The bounds of one bridged call, go-sdk's: rounds in all, and rounds in a
// row that asked for nothing but carried a requestState.
const (
	maxInputRounds = 10
	maxStateRounds = 3
)

// inputMethods are what an input request may ask of the client.
var inputMethods = []string{"elicitation/create", "sampling/createMessage", "roots/list"}

// inputRequest is one entry of an input_required result's inputRequests.
type inputRequest struct {
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

// inputRequired reads an input_required result (ok false for any other).
func inputRequired(resp *bus.Message) (reqs map[string]inputRequest, state json.RawMessage, ok bool) {
	if resp == nil || len(resp.Error) > 0 || !bytes.Contains(resp.Result, []byte(`"input_required"`)) {
		return nil, nil, false
	}
	var r struct {
		ResultType    string                  `json:"resultType"`
		InputRequests map[string]inputRequest `json:"inputRequests"`
		RequestState  json.RawMessage         `json:"requestState"`
	}
	if json.Unmarshal(resp.Result, &r) != nil || r.ResultType != "input_required" {
		return nil, nil, false
	}
	return r.InputRequests, r.RequestState, true
}

// bridgesInput reports whether a request of method may be answered with
// input_required (SEP-2322).
func bridgesInput(method string) bool {
	switch method {
	case bus.MethodToolsCall, bus.MethodPromptsGet, bus.MethodResourcesRead:
		return true
	}
	return false
}

// fulfil answers, for a session-era caller, the input an upstream's
// input_required result resp asks for, and calls again until a complete
// result or an error, which it returns in resp's place. call sends the
// request with the given params (the leg's, with the answers added).
func fulfil(ctx context.Context, server string, resp *bus.Message, params json.RawMessage, relay *callRelay, call func(json.RawMessage) (*bus.Message, error)) (*bus.Message, error) {
	stateOnly := 0
	for round := 1; ; round++ {
		reqs, state, ok := inputRequired(resp)
		if !ok {
			return resp, nil
		}
		if round > maxInputRounds {
			return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q still asked for input after %d rounds", server, maxInputRounds)
		}
		if len(reqs) == 0 {
			if stateOnly++; stateOnly > maxStateRounds || len(state) == 0 {
				return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered input_required with nothing to ask %d times in a row", server, stateOnly)
			}
		} else {
			stateOnly = 0
		}
		answers := make(map[string]json.RawMessage, len(reqs))
		keys := make([]string, 0, len(reqs))
		for k := range reqs {
			keys = append(keys, k)
		}
		slices.Sort(keys) // one order for the client's prompts, every time
		for _, k := range keys {
			r := reqs[k]
			if !slices.Contains(inputMethods, r.Method) {
				return nil, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q asked for input with %q, which is not one of %v", server, bus.Shorten(r.Method, 64), inputMethods)
			}
			id, _ := json.Marshal("mcpbus-input-" + k)
			raw := relay.Request(ctx, &bus.Message{JSONRPC: "2.0", ID: id, Method: r.Method, Params: r.Params})
			var a bus.Message
			if json.Unmarshal(raw, &a) != nil || !a.IsResponse() {
				return nil, bus.Errorf(bus.ErrInternal, "relaying %s to the client gave no response", r.Method)
			}
			if len(a.Error) > 0 {
				// The client could not or would not answer: that is the
				// call's answer, as when an older upstream asks directly.
				return &bus.Message{JSONRPC: "2.0", Error: a.Error}, nil
			}
			answers[k] = a.Result
		}
		retry, err := withInput(params, answers, state)
		if err != nil {
			return nil, bus.Wrap(bus.ErrInvalidParams, err, "the request's params are not a JSON object")
		}
		if resp, err = call(retry); err != nil {
			return nil, err
		}
	}
}

// withInput is params with inputResponses and requestState set (replacing
// a previous round's), for the same request sent again.
func withInput(params json.RawMessage, answers map[string]json.RawMessage, state json.RawMessage) (json.RawMessage, error) {
	p := map[string]json.RawMessage{}
	if len(params) > 0 && string(params) != "null" {
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, err
		}
	}
	delete(p, "inputResponses")
	delete(p, "requestState")
	if len(answers) > 0 {
		p["inputResponses"], _ = json.Marshal(answers)
	}
	if len(state) > 0 && string(state) != "null" {
		p["requestState"] = state
	}
	return json.Marshal(p)
}
