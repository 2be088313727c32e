package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The whole MCP protocol through the gateway, with a real go-sdk client and
// two real go-sdk upstreams: what an upstream sends besides the response
// (progress, sampling, elicitation, log messages, list changes) reaches the
// client, the client's answers reach the upstream, and a client's
// cancellation stops the upstream's work.

func samplingClient(answer string, progress *progressLog) *mcp.ClientOptions {
	return &mcp.ClientOptions{
		CreateMessageHandler: func(_ context.Context, req *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			q := req.Params.Messages[0].Content.(*mcp.TextContent).Text
			return &mcp.CreateMessageResult{Role: "assistant", Model: "test-model",
				Content: &mcp.TextContent{Text: answer + " (to: " + q + ")"}}, nil
		},
		ProgressNotificationHandler: progress.handler,
	}
}

// checkSampleAndProgress calls the sample tool named name and checks the
// sampling round trip and the progress notifications with the caller's token.
func checkSampleAndProgress(t *testing.T, cs *mcp.ClientSession, progress *progressLog, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: name, Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "tok-7"}})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if got != "beta sampled: from the client (to: question from beta)" {
		t.Fatalf("%s answered %q", name, got)
	}
	bustest.Eventually(t, 30*time.Second, "two progress notifications", func() error { return bustest.AtLeast("progress notifications", len(progress.got()), 2) })
	for i, p := range progress.got() {
		if p.ProgressToken != "tok-7" || p.Progress != float64(i+1) || p.Message != "beta" {
			t.Fatalf("progress %d: token %v progress %v message %q", i, p.ProgressToken, p.Progress, p.Message)
		}
	}
}

// Progress and sampling from the second of two servers, on its own endpoint.
func TestRelayProgressAndSamplingFromSecondServer(t *testing.T) {
	g, _, _ := relayGateway(t)
	progress := &progressLog{}
	cs := relayClient(t, g.URL()+"/mcp/beta", samplingClient("from the client", progress))
	checkSampleAndProgress(t, cs, progress, "sample")
}

// The same through /mcp, where the two servers are aggregated: the tool is
// beta's by its namespaced name, and the relay still finds its way to the
// client and back.
func TestRelayProgressAndSamplingAggregated(t *testing.T) {
	g, _, _ := relayGateway(t)
	progress := &progressLog{}
	cs := relayClient(t, g.URL()+"/mcp", samplingClient("from the client", progress))
	checkSampleAndProgress(t, cs, progress, "beta__sample")
}

// An elicitation is answered by the client's user and the answer reaches
// the tool.
func TestRelayElicitationAnswered(t *testing.T) {
	g, _, _ := relayGateway(t)
	cs := relayClient(t, g.URL()+"/mcp/beta", &mcp.ClientOptions{
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if req.Params.Message != "your name?" {
				return &mcp.ElicitResult{Action: "decline"}, nil
			}
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: "elicit", Arguments: map[string]any{}})
	if err != nil || got != "beta: accept Ada" {
		t.Fatalf("elicit answered %q, %v", got, err)
	}
}

// Log messages of a call reach the client at the level it set on its
// session (logging/setLevel is of the session era; a 2026-07-28 client's
// level travels in each request's _meta: TestStatelessLogLevelAndSampling).
func TestRelayLoggingMessages(t *testing.T) {
	g, _, _ := relayGateway(t)
	var mu sync.Mutex
	var got []string
	cs := sessionEraClient(t, g.URL()+"/mcp/beta", &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			mu.Lock()
			got = append(got, string(r.Params.Level))
			mu.Unlock()
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := cs.SetLoggingLevel(ctx, &mcp.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	if _, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: "log", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	want := []string{"info", "warning", "error"}
	bustest.Eventually(t, 30*time.Second, "three log messages", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < len(want) {
			return fmt.Errorf("log messages at levels %v, want %v", got, want)
		}
		return nil
	})
	// The upstream logs debug first: one let through would be among these.
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("log messages at levels %v, want %v", got, want)
	}
}

// A client that cancels its call (the go-sdk client on a 2025-11-25
// session sends notifications/cancelled when the call's context ends) stops
// the upstream's work: the tool's context ends long before any timeout. (A
// 2026-07-28 client cancels by closing its POST:
// TestStatelessDisconnectCancelsUpstream.)
func TestRelayCancellationReachesUpstream(t *testing.T) {
	g, _, beta := relayGateway(t)
	cs := sessionEraClient(t, g.URL()+"/mcp/beta", nil)
	if err := cancelSlowCall(t, g, cs, beta); err == nil {
		t.Fatal("the cancelled call succeeded")
	}
	if !strings.Contains(g.logs.String(), "the client cancelled an in-flight call") {
		t.Error("the worker did not log the client's cancellation")
	}
	// The session is still usable.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if got, err := relayCall(ctx2, cs, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil || got != "beta" {
		t.Fatalf("after the cancellation: %q %v", got, err)
	}
}

// When an upstream's tool list changes, a client with an open GET stream
// hears notifications/tools/list_changed and sees the new tool. Both GET
// streams (the worker's upstream one, the client's) open in the background
// after the session starts, and a change made before they are open is heard
// by nobody: the test changes the list again until the client hears of it,
// pausing between changes, not asserting any time.
func TestRelayToolListChangedReachesGETStream(t *testing.T) {
	g, _, beta := relayGateway(t)
	changed := make(chan struct{}, 8)
	cs := relayClient(t, g.URL()+"/mcp/beta", &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { changed <- struct{}{} },
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	added := 0
	for deadline := time.Now().Add(30 * time.Second); ; {
		added++
		mcp.AddTool(beta.srv, &mcp.Tool{Name: fmt.Sprintf("added-%d", added)}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "new"}}}, nil, nil
		})
		select {
		case <-changed:
		case <-time.After(300 * time.Millisecond): // not a bound: change the list again
			if time.Now().After(deadline) {
				t.Fatalf("no notifications/tools/list_changed reached the client after %d changes", added)
			}
			continue
		}
		break
	}
	after, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Tools) != len(before.Tools)+added {
		t.Fatalf("%d tools after %d changes, %d before", len(after.Tools), added, len(before.Tools))
	}
}
