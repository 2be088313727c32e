package toolworkers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func result(s string) *bus.Message {
	return &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(`1`), Result: json.RawMessage(s)}
}

// The bridge's own decisions, without a client to ask: what ends a call,
// and what the retry carries.
func TestFulfilBounds(t *testing.T) {
	ctx := context.Background()
	// A complete result (or any other) is the answer as it is.
	done := result(`{"resultType":"complete","content":[]}`)
	if got, err := fulfil(ctx, "s", done, nil, nil, nil); err != nil || got != done {
		t.Fatalf("complete result: %v %v", got, err)
	}
	// Asking for nothing but a state, again and again, ends.
	calls := 0
	stateOnly := result(`{"resultType":"input_required","requestState":"s1"}`)
	_, err := fulfil(ctx, "s", stateOnly, json.RawMessage(`{"name":"t"}`), nil, func(p json.RawMessage) (*bus.Message, error) {
		calls++
		if !strings.Contains(string(p), `"requestState":"s1"`) {
			t.Errorf("retry params %s do not echo the requestState", p)
		}
		return stateOnly, nil
	})
	if err == nil || calls != maxStateRounds || !strings.Contains(err.Error(), "nothing to ask") {
		t.Fatalf("state-only rounds: %d calls, %v", calls, err)
	}
	// What a client cannot be asked is refused with a reason.
	odd := result(`{"resultType":"input_required","inputRequests":{"a":{"method":"tools/call","params":{}}}}`)
	if _, err := fulfil(ctx, "s", odd, nil, nil, nil); err == nil || !strings.Contains(err.Error(), "tools/call") {
		t.Fatalf("an input request for tools/call: %v", err)
	}
	// A caller with no stream cannot be asked: the refusal is the answer.
	ask := result(`{"resultType":"input_required","inputRequests":{"who":{"method":"elicitation/create","params":{"message":"name?"}}}}`)
	got, err := fulfil(ctx, "s", ask, nil, nil, nil)
	if err != nil || got == nil || !strings.Contains(string(got.Error), "no stream") {
		t.Fatalf("no stream: %v %v", got, err)
	}
}

func TestWithInputReplacesTheLastRound(t *testing.T) {
	p, err := withInput(json.RawMessage(`{"name":"t","arguments":{"x":1},"inputResponses":{"old":{}},"requestState":"old"}`),
		map[string]json.RawMessage{"who": json.RawMessage(`{"action":"accept"}`)}, json.RawMessage(`"new"`))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]json.RawMessage
	_ = json.Unmarshal(p, &got)
	if string(got["inputResponses"]) != `{"who":{"action":"accept"}}` || string(got["requestState"]) != `"new"` || string(got["arguments"]) != `{"x":1}` {
		t.Fatalf("retry params %s", p)
	}
	if _, err := withInput(json.RawMessage(`[1]`), nil, nil); err == nil {
		t.Fatal("params that are not an object were accepted")
	}
}
