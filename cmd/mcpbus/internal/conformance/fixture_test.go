package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The names are exactly those the conformance scenarios call.
func TestListsServeTheConformanceNames(t *testing.T) {
	_, url := serve(t)
	cs := connect(t, url, nil)
	ctx := testCtx(t)

	caps := cs.InitializeResult().Capabilities
	if caps.Tools == nil || caps.Prompts == nil || caps.Resources == nil || !caps.Resources.Subscribe ||
		caps.Logging == nil || caps.Completions == nil {
		t.Errorf("capabilities should declare tools, prompts, resources with subscribe, logging, completions: %s", mustJSON(t, caps))
	}

	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range tools.Tools {
		names = append(names, tool.Name)
		if tool.Description == "" || tool.InputSchema == nil {
			t.Errorf("tool %s needs a description and an input schema", tool.Name)
		}
	}
	for _, want := range []string{"test_simple_text", "test_image_content", "test_audio_content", "test_embedded_resource",
		"test_multiple_content_types", "test_tool_with_logging", "test_error_handling", "test_tool_with_progress",
		"test_sampling", "test_elicitation", "json_schema_2020_12_tool", "test_elicitation_sep1034_defaults",
		"test_elicitation_sep1330_enums", "test_reconnection",
		// 2026-07-28 (served in both eras)
		"test_missing_capability", "test_streaming_elicitation", "test_logging_tool", "test_trigger_tool_change",
		"test_trigger_prompt_change", "test_input_required_result_elicitation", "test_input_required_result_sampling",
		"test_input_required_result_list_roots", "test_input_required_result_request_state",
		"test_input_required_result_multiple_inputs", "test_input_required_result_multi_round",
		"test_input_required_result_tampered_state", "test_input_required_result_capabilities"} {
		if !slices.Contains(names, want) {
			t.Errorf("tools/list lacks %s: %v", want, names)
		}
	}

	// The 2020-12 keywords survive tools/list.
	i := slices.Index(names, "json_schema_2020_12_tool")
	if i >= 0 {
		var schema map[string]any
		if err := json.Unmarshal([]byte(mustJSON(t, tools.Tools[i].InputSchema)), &schema); err != nil {
			t.Fatal(err)
		}
		if schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" || schema["additionalProperties"] != false {
			t.Errorf("2020-12 schema lost $schema or additionalProperties: %v", schema)
		}
		if defs, _ := schema["$defs"].(map[string]any); defs["address"] == nil {
			t.Errorf("2020-12 schema lost $defs.address: %v", schema)
		}
	}

	resources, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, r := range resources.Resources {
		uris = append(uris, r.URI)
	}
	slices.Sort(uris)
	if want := []string{"test://static-binary", "test://static-text", "test://watched-resource"}; !slices.Equal(uris, want) {
		t.Errorf("resources/list = %v, want %v", uris, want)
	}
	templates, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(templates.ResourceTemplates) != 1 || templates.ResourceTemplates[0].URITemplate != "test://template/{id}/data" {
		t.Errorf("resources/templates/list = %s", mustJSON(t, templates))
	}
	prompts, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var pnames []string
	for _, p := range prompts.Prompts {
		pnames = append(pnames, p.Name)
	}
	slices.Sort(pnames)
	if want := []string{"test_input_required_result_prompt", "test_prompt_with_arguments", "test_prompt_with_embedded_resource",
		"test_prompt_with_image", "test_simple_prompt"}; !slices.Equal(pnames, want) {
		t.Errorf("prompts/list = %v, want %v", pnames, want)
	}
}

func TestContentTools(t *testing.T) {
	_, url := serve(t)
	cs := connect(t, url, nil)

	if got := onlyText(t, call(t, cs, "test_simple_text", nil)); got != simpleText {
		t.Errorf("test_simple_text = %q", got)
	}

	img, ok := call(t, cs, "test_image_content", map[string]any{}).Content[0].(*mcp.ImageContent)
	if !ok || img.MIMEType != "image/png" {
		t.Fatalf("test_image_content should return a PNG image block, got %#v", img)
	}
	if cfg, err := png.DecodeConfig(bytes.NewReader(img.Data)); err != nil || cfg.Width != 1 || cfg.Height != 1 {
		t.Errorf("image is not a 1x1 PNG: %v %+v", err, cfg)
	}

	audio, ok := call(t, cs, "test_audio_content", nil).Content[0].(*mcp.AudioContent)
	if !ok || audio.MIMEType != "audio/wav" {
		t.Fatalf("test_audio_content should return audio/wav, got %#v", audio)
	}
	d := audio.Data
	if len(d) < 44 || string(d[:4]) != "RIFF" || string(d[8:16]) != "WAVEfmt " || string(d[36:40]) != "data" ||
		int(binary.LittleEndian.Uint32(d[4:8])) != len(d)-8 || int(binary.LittleEndian.Uint32(d[40:44])) != len(d)-44 {
		t.Errorf("audio is not a well-formed WAV file (%d bytes)", len(d))
	}

	res, ok := call(t, cs, "test_embedded_resource", nil).Content[0].(*mcp.EmbeddedResource)
	if !ok || res.Resource.URI != embeddedResourceURI || res.Resource.MIMEType != "text/plain" || res.Resource.Text == "" {
		t.Errorf("test_embedded_resource = %s", mustJSON(t, res))
	}

	var kinds []string
	for _, c := range call(t, cs, "test_multiple_content_types", nil).Content {
		kinds = append(kinds, fmt.Sprintf("%T", c))
	}
	if want := []string{"*mcp.TextContent", "*mcp.ImageContent", "*mcp.EmbeddedResource"}; !slices.Equal(kinds, want) {
		t.Errorf("test_multiple_content_types = %v, want %v", kinds, want)
	}

	errRes := call(t, cs, "test_error_handling", nil)
	if !errRes.IsError || len(errRes.Content) == 0 || errRes.Content[0].(*mcp.TextContent).Text != errorText {
		t.Errorf("test_error_handling should be a tool error saying %q, got %s", errorText, mustJSON(t, errRes))
	}
}

func TestResourcesAndSubscription(t *testing.T) {
	f, url := serve(t)
	updated := make(chan string, 4)
	cs := connect(t, url, &mcp.ClientOptions{
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			updated <- req.Params.URI
		},
	})
	connect(t, url, &mcp.ClientOptions{ // a second session, never subscribed
		ResourceUpdatedHandler: func(_ context.Context, req *mcp.ResourceUpdatedNotificationRequest) {
			t.Errorf("a session that did not subscribe got resources/updated for %s", req.Params.URI)
		},
	})
	ctx := testCtx(t)

	read := func(uri string) *mcp.ResourceContents {
		t.Helper()
		res, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
		if err != nil {
			t.Fatalf("read %s: %v", uri, err)
		}
		if len(res.Contents) != 1 || res.Contents[0].URI != uri {
			t.Fatalf("read %s: %s", uri, mustJSON(t, res))
		}
		return res.Contents[0]
	}
	if c := read("test://static-text"); c.Text != staticText || c.MIMEType != "text/plain" {
		t.Errorf("static-text = %s", mustJSON(t, c))
	}
	if c := read("test://static-binary"); c.MIMEType != "image/png" || !bytes.Equal(c.Blob, pngImage) {
		t.Errorf("static-binary = %s", mustJSON(t, c))
	}
	if c := read("test://template/123/data"); c.Text != `{"data":"Data for ID: 123","id":"123","templateTest":true}` {
		t.Errorf("template read should substitute the id: %q", c.Text)
	}
	_, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "test://nope"})
	if rpcErr := (*jsonrpc.Error)(nil); !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("reading an unknown resource: %v, want a -32602 resource not found error", err)
	}
	err = cs.Subscribe(ctx, &mcp.SubscribeParams{URI: "test://nope"})
	if rpcErr := (*jsonrpc.Error)(nil); !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc.CodeInvalidParams ||
		!strings.Contains(rpcErr.Message, "not found") {
		t.Errorf("subscribing to an unknown resource: %v, want a -32602 resource not found error", err)
	}

	before := read(watchedURI).Text
	if err := cs.Subscribe(ctx, &mcp.SubscribeParams{URI: watchedURI}); err != nil {
		t.Fatal(err)
	}
	if err := f.UpdateWatched(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case uri := <-updated:
		if uri != watchedURI {
			t.Errorf("updated %s, want %s", uri, watchedURI)
		}
	case <-time.After(30 * time.Second): // only a notification never sent gets here
		t.Fatal("no resources/updated after UpdateWatched")
	}
	if after := read(watchedURI).Text; after == before {
		t.Errorf("watched resource should change on update, still %q", after)
	}

	if err := cs.Unsubscribe(ctx, &mcp.UnsubscribeParams{URI: watchedURI}); err != nil {
		t.Fatal(err)
	}
	if err := f.UpdateWatched(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case uri := <-updated:
		t.Errorf("got resources/updated for %s after unsubscribing", uri)
	case <-time.After(200 * time.Millisecond): // real time: a notification not sent has no event to wait for
	}
}

func TestPromptsAndCompletion(t *testing.T) {
	_, url := serve(t)
	cs := connect(t, url, nil)
	ctx := testCtx(t)

	get := func(name string, args map[string]string) *mcp.GetPromptResult {
		t.Helper()
		res, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("prompts/get %s: %v", name, err)
		}
		return res
	}
	if res := get("test_simple_prompt", nil); len(res.Messages) != 1 || res.Messages[0].Role != "user" {
		t.Errorf("test_simple_prompt = %s", mustJSON(t, res))
	}
	res := get("test_prompt_with_arguments", map[string]string{"arg1": "hello", "arg2": "world"})
	if got := res.Messages[0].Content.(*mcp.TextContent).Text; got != "Prompt with arguments: arg1='hello', arg2='world'" {
		t.Errorf("arguments not substituted: %q", got)
	}
	res = get("test_prompt_with_embedded_resource", map[string]string{"resourceUri": "test://example-resource"})
	if er, ok := res.Messages[0].Content.(*mcp.EmbeddedResource); !ok || er.Resource.URI != "test://example-resource" {
		t.Errorf("embedded resource should carry the given URI: %s", mustJSON(t, res))
	}
	res = get("test_prompt_with_image", nil)
	if img, ok := res.Messages[0].Content.(*mcp.ImageContent); !ok || img.MIMEType != "image/png" || len(img.Data) == 0 {
		t.Errorf("test_prompt_with_image = %s", mustJSON(t, res))
	}

	comp, err := cs.Complete(ctx, &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/prompt", Name: "test_prompt_with_arguments"},
		Argument: mcp.CompleteParamsArgument{Name: "arg1", Value: "par"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(comp.Completion.Values, []string{"paris", "park", "party"}) {
		t.Errorf("completion of par = %v", comp.Completion.Values)
	}
	comp, err = cs.Complete(ctx, &mcp.CompleteParams{
		Ref:      &mcp.CompleteReference{Type: "ref/resource", URI: "test://template/{id}/data"},
		Argument: mcp.CompleteParamsArgument{Name: "id", Value: "12"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(comp.Completion.Values, []string{"12", "123", "1234"}) {
		t.Errorf("completion of template id 12 = %v", comp.Completion.Values)
	}
}

// DNS rebinding protection: a request that reached a loopback address with a
// foreign Host is refused; the same request with the real host is served.
func TestRefusesForeignHostOnLoopback(t *testing.T) {
	_, url := serve(t)
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}`
	post := func(host string) int {
		req, err := http.NewRequest("POST", url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Host = host
		req.Header.Set("Origin", "http://"+host)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("evil.example.com"); code != http.StatusForbidden {
		t.Errorf("foreign Host: status %d, want 403", code)
	}
	if code := post(strings.TrimPrefix(url, "http://")); code != http.StatusOK {
		t.Errorf("loopback Host: status %d, want 200", code)
	}
}
