package mcpclient

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/openai/openai-go/v3"
)

// What OpenAI needs of parameters: an object schema with properties, even
// from a tool whose schema is empty.
func TestParameters(t *testing.T) {
	for _, c := range []struct {
		in   any
		want string
	}{
		{nil, `{"properties":{},"type":"object"}`},
		{json.RawMessage(`{"type":"object"}`), `{"properties":{},"type":"object"}`},
		{map[string]any{"type": "object", "properties": map[string]any{"a": map[string]any{"type": "integer"}}, "required": []string{"a"}},
			`{"properties":{"a":{"type":"integer"}},"required":["a"],"type":"object"}`},
	} {
		p, err := parameters(c.in)
		got, _ := json.Marshal(p)
		if err != nil || string(got) != c.want {
			t.Errorf("%v: %s %v, want %s", c.in, got, err, c.want)
		}
	}
	if _, err := parameters(json.RawMessage(`[1]`)); err == nil {
		t.Error("a schema that is not an object was taken")
	}
}

func call(name, args string) openai.ChatCompletionMessageToolCallUnion {
	var c openai.ChatCompletionMessageToolCallUnion
	raw, _ := json.Marshal(map[string]any{"id": "call_9", "type": "function", "function": map[string]any{"name": name, "arguments": args}})
	_ = json.Unmarshal(raw, &c)
	return c
}

// A failing tool is a result the model sees, prefixed error:; arguments
// that are not JSON, and a tool the session does not have, are errors
// naming the call.
func TestCallOutcomes(t *testing.T) {
	ctx := context.Background()
	srv := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, errFailed
	})
	st, ct := mcp.NewInMemoryTransports()
	if _, err := srv.Connect(ctx, st, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "c", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := Call(ctx, cs, call("fail", ""))
	if err != nil || !res.IsError {
		t.Fatalf("fail: %+v %v", res, err)
	}
	if m := ToolMessage(call("fail", ""), res); !strings.HasPrefix(m.OfTool.Content.OfString.Value, "error: ") {
		t.Fatalf("tool message %q", m.OfTool.Content.OfString.Value)
	}
	if _, err := Call(ctx, cs, call("fail", "{not json")); err == nil || !strings.Contains(err.Error(), "call_9 (fail)") {
		t.Fatalf("bad arguments: %v", err)
	}
	if _, err := Call(ctx, cs, call("nope", "{}")); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown tool: %v", err)
	}
}

var errFailed = errors.New("it always fails")
