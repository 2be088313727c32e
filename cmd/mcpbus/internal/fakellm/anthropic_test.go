package fakellm

import (
	"context"
	"errors"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
)

func anthropicClient(url, key string) anthropic.Client {
	return anthropic.NewClient(option.WithBaseURL(url), option.WithAPIKey(key), option.WithMaxRetries(0))
}

// The official Go SDK reads the fake as it reads Anthropic: a message with
// usage, a stream it accumulates, a tool_use the scripted model asks for and
// the answer after its tool_result, errors in Anthropic's shape.
func TestAnthropicWireWithTheOfficialSDK(t *testing.T) {
	_, url := serve(t)
	c := anthropicClient(url, testKey)
	ctx := context.Background()
	msg, err := c.Messages.New(ctx, anthropic.MessageNewParams{Model: "fake-claude", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello claude"))}})
	if err != nil {
		t.Fatal(err)
	}
	if len(msg.Content) != 1 || msg.Content[0].Text != "echo: hello claude" || msg.StopReason != "end_turn" || msg.Usage.InputTokens != 2 || msg.Usage.OutputTokens != 3 {
		t.Fatalf("message: %+v", msg)
	}

	stream := c.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: "fake-claude", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("stream it please"))}})
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 1 || acc.Content[0].Text != "echo: stream it please" || acc.StopReason != "end_turn" || acc.Usage.OutputTokens != 4 {
		t.Fatalf("stream: %+v", acc)
	}

	tools := []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "demo-echo",
		InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"text": map[string]any{"type": "string"}}}}}}
	msgs := []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(`call echo with {"text":"yo"}`))}
	msg, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: "fake-claude", MaxTokens: 64, Messages: msgs, Tools: tools})
	if err != nil {
		t.Fatal(err)
	}
	if msg.StopReason != "tool_use" || len(msg.Content) != 1 || msg.Content[0].Name != "demo-echo" || string(msg.Content[0].Input) != `{"text":"yo"}` {
		t.Fatalf("tool use: %+v", msg)
	}
	msgs = append(msgs, msg.ToParam(), anthropic.NewUserMessage(anthropic.NewToolResultBlock(msg.Content[0].ID, "yo", false)))
	msg, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: "fake-claude", MaxTokens: 64, Messages: msgs, Tools: tools})
	if err != nil || msg.Content[0].Text != "tool result: yo" {
		t.Fatalf("after the tool result: %+v %v", msg, err)
	}

	_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: "fake-error-429", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	var apiErr *anthropic.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 429 {
		t.Fatalf("429: %v", err)
	}
	wrong := anthropicClient(url, "wrong")
	_, err = wrong.Messages.New(ctx, anthropic.MessageNewParams{Model: "fake-claude", MaxTokens: 64,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))}})
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 401 {
		t.Fatalf("wrong key: %v", err)
	}
}
