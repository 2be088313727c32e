package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// addSimplePrompt registers test_simple_prompt (again, for
// test_trigger_prompt_change).
func addSimplePrompt(s *mcp.Server) {
	s.AddPrompt(&mcp.Prompt{
		Name: "test_simple_prompt", Description: "A prompt without arguments.",
	}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return prompt("A simple prompt", &mcp.PromptMessage{Role: "user", Content: &mcp.TextContent{Text: "This is a simple prompt for testing."}}), nil
	})
}

func addPrompts(s *mcp.Server) {
	addSimplePrompt(s)
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_arguments", Description: "A prompt with two required arguments.",
		Arguments: []*mcp.PromptArgument{
			{Name: "arg1", Description: "First test argument", Required: true},
			{Name: "arg2", Description: "Second test argument", Required: true},
		},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		a := req.Params.Arguments
		text := fmt.Sprintf("Prompt with arguments: arg1='%s', arg2='%s'", a["arg1"], a["arg2"])
		return prompt("A prompt with arguments", &mcp.PromptMessage{Role: "user", Content: &mcp.TextContent{Text: text}}), nil
	})
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_embedded_resource", Description: "A prompt embedding the resource named by its argument.",
		Arguments: []*mcp.PromptArgument{{Name: "resourceUri", Description: "URI of the resource to embed", Required: true}},
	}, func(_ context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		uri := req.Params.Arguments["resourceUri"]
		return prompt("A prompt with an embedded resource",
			&mcp.PromptMessage{Role: "user", Content: &mcp.EmbeddedResource{Resource: &mcp.ResourceContents{
				URI: uri, MIMEType: "text/plain", Text: "Embedded resource content for testing.",
			}}},
			&mcp.PromptMessage{Role: "user", Content: &mcp.TextContent{Text: "Please process the embedded resource above."}},
		), nil
	})
	s.AddPrompt(&mcp.Prompt{
		Name: "test_prompt_with_image", Description: "A prompt with an image.",
	}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		return prompt("A prompt with an image",
			&mcp.PromptMessage{Role: "user", Content: &mcp.ImageContent{Data: pngImage, MIMEType: "image/png"}},
			&mcp.PromptMessage{Role: "user", Content: &mcp.TextContent{Text: "Please analyze the image above."}},
		), nil
	})
}

func prompt(description string, msgs ...*mcp.PromptMessage) *mcp.GetPromptResult {
	return &mcp.GetPromptResult{Description: description, Messages: msgs}
}

// Completion candidates, per argument.
var (
	promptArgValues = []string{"paris", "park", "party", "test", "testing", "testValue1", "testValue2"}
	templateIDs     = []string{"1", "12", "123", "1234"}
)

// complete offers the candidates starting with the typed value for
// test_prompt_with_arguments' arguments and the template's id; anything else
// gets an empty (but valid) completion.
func complete(_ context.Context, req *mcp.CompleteRequest) (*mcp.CompleteResult, error) {
	p := req.Params
	var candidates []string
	switch {
	case p.Ref != nil && p.Ref.Type == "ref/prompt" && p.Ref.Name == "test_prompt_with_arguments" &&
		(p.Argument.Name == "arg1" || p.Argument.Name == "arg2"):
		candidates = promptArgValues
	case p.Ref != nil && p.Ref.Type == "ref/resource" && p.Ref.URI == templateURI && p.Argument.Name == "id":
		candidates = templateIDs
	}
	values := []string{}
	for _, c := range candidates {
		if strings.HasPrefix(c, p.Argument.Value) {
			values = append(values, c)
		}
	}
	slices.Sort(values)
	return &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: values, Total: len(values)}}, nil
}
