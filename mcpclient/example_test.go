package mcpclient_test

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/mcpbus/mcpbus/mcpclient"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/openai/openai-go/v3"
)

// session connects a go-sdk client to an in-process server with two tools;
// in use it is a session to mcpbus's /mcp.
func session(ctx context.Context) *mcp.ClientSession {
	srv := mcp.NewServer(&mcp.Implementation{Name: "example", Version: "1"}, nil)
	type echoIn struct {
		Text string `json:"text" jsonschema:"what to echo"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Echo the text."}, func(_ context.Context, _ *mcp.CallToolRequest, in echoIn) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: in.Text}}}, nil, nil
	})
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
		return nil, nil, fmt.Errorf("it always fails")
	})
	st, ct := mcp.NewInMemoryTransports()
	if _, err := srv.Connect(ctx, st, nil); err != nil {
		panic(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		panic(err)
	}
	return cs
}

// The session's tools go into a chat completions request as they are; the
// model's tool call runs on the session, and its result goes back as the
// tool message.
func Example() {
	ctx := context.Background()
	cs := session(ctx)
	defer cs.Close()

	tools, err := mcpclient.Tools(ctx, cs)
	if err != nil {
		panic(err)
	}
	for _, t := range tools {
		params, _ := json.Marshal(t.OfFunction.Function.Parameters["properties"])
		fmt.Println(t.OfFunction.Function.Name, string(params))
	}
	_ = openai.ChatCompletionNewParams{Model: "gpt-4o", Tools: tools} // what a model is offered

	// As a model answers: a tool call naming echo.
	var call openai.ChatCompletionMessageToolCallUnion
	_ = json.Unmarshal([]byte(`{"id":"call_1","type":"function","function":{"name":"echo","arguments":"{\"text\":\"hi\"}"}}`), &call)
	res, err := mcpclient.Call(ctx, cs, call)
	if err != nil {
		panic(err)
	}
	msg := mcpclient.ToolMessage(call, res)
	fmt.Println(msg.OfTool.ToolCallID, msg.OfTool.Content.OfString.Value)
	// Output:
	// echo {"text":{"description":"what to echo","type":"string"}}
	// fail {}
	// call_1 hi
}
