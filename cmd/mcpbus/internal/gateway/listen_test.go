package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// subscriptions/listen (MCP 2026-07-28) at the gateway: a stateless-era
// client hears of its servers' list changes with no session (plan:
// docs/plans/mcp-2026-07-28.md, step 8).

// addTool changes u's tool list; its go-sdk server tells its sessions
// (the worker's among them) that the list changed.
func addTool(u *relayUpstream, name string) {
	u.srv.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil
		})
}

// The go-sdk client opens a listen when it connects (it has a tool list
// handler, and discover declares tools.listChanged), and hears the changes
// of the servers its endpoint uses. The worker's upstream GET stream opens
// in the background, and a change made before it is open is heard by
// nobody: as in TestRelayToolListChangedReachesGETStream, the test changes
// the list again until the client hears of it, asserting no time.
func TestStatelessListenHearsListChanges(t *testing.T) {
	g, alpha, beta := statelessGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type counted struct {
		n    atomic.Int32
		seen chan struct{}
	}
	listener := func(c *counted) *mcp.ClientOptions {
		return &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			c.n.Add(1)
			c.seen <- struct{}{}
		}}
	}
	all, onlyBeta := &counted{seen: make(chan struct{}, 8)}, &counted{seen: make(chan struct{}, 8)}
	csAll := modernClient(t, g.URL()+"/mcp", listener(all))
	csBeta := modernClient(t, g.URL()+"/mcp/beta", listener(onlyBeta))
	if _, err := csAll.ListTools(ctx, nil); err != nil { // the worker's upstream sessions are open
		t.Fatal(err)
	}
	if _, err := csBeta.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}
	changeUntilHeard := func(u *relayUpstream, c *counted, what string) {
		t.Helper()
		for n := 0; ; n++ {
			addTool(u, fmt.Sprintf("fresh%d", n))
			select {
			case <-c.seen:
				return
			case <-time.After(300 * time.Millisecond): // not a bound: change the list again
				if ctx.Err() != nil {
					t.Fatalf("no tools/list_changed reached the client of %s", what)
				}
			}
		}
	}
	changeUntilHeard(alpha, all, "/mcp after alpha changed")
	tools, err := csAll.ListTools(ctx, nil)
	if err != nil || !strings.Contains(toolNames(tools), "alpha__fresh0") {
		t.Fatalf("after the change, /mcp lists %s (%v)", toolNames(tools), err)
	}
	changeUntilHeard(beta, onlyBeta, "/mcp/beta after beta changed")
	if n := sessionCount(t, g); n != 0 {
		t.Errorf("the gateway holds %d sessions, want none", n)
	}
}

func toolNames(r *mcp.ListToolsResult) string {
	if r == nil {
		return ""
	}
	var names []string
	for _, t := range r.Tools {
		names = append(names, t.Name)
	}
	return strings.Join(names, ",")
}

// On the wire: the acknowledgement first, with the agreed subset (not the
// resource alpha refuses to subscribe), then each change tagged with the listen
// request's id, a kind the client did not ask for never.
func TestStatelessListenWire(t *testing.T) {
	g, alpha, _ := statelessGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// Open alpha's upstream session first, so its changes are heard.
	if r := modernPost(t, g.URL()+"/mcp/alpha", "tools/list", "", "{}"); r.status != 200 {
		t.Fatalf("tools/list: %d %s", r.status, r.body)
	}
	body := strings.Replace(modernBody("subscriptions/listen", `{"notifications":{"promptsListChanged":true,"toolsListChanged":true,"resourceSubscriptions":["test://x"]}}`, `"2026-07-28"`), `"id":1`, `"id":"listen-7"`, 1)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL()+"/mcp/alpha", strings.NewReader(body))
	req.Header = http.Header{"Authorization": {"Bearer " + master}, "Mcp-Protocol-Version": {bus.FirstModernVersion},
		"Mcp-Method": {"subscriptions/listen"}, "Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("listen: HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// next is the next message, or "" when none came within wait (not a
	// bound on the gateway: the caller changes the list and asks again).
	next := func(wait time.Duration) string {
		t.Helper()
		for {
			select {
			case line, ok := <-lines:
				if !ok {
					t.Fatal("the listen stream ended")
				}
				if strings.HasPrefix(line, "id:") {
					t.Fatalf("a stateless-era stream carried an event id: %s", line)
				}
				if data, ok := strings.CutPrefix(line, "data: "); ok {
					return data
				}
			case <-time.After(wait):
				return ""
			case <-ctx.Done():
				t.Fatal("the listen stream went quiet")
			}
		}
	}
	var ack struct {
		Method string
		Params struct {
			Meta          map[string]json.RawMessage `json:"_meta"`
			Notifications map[string]any             `json:"notifications"`
		}
	}
	first := next(15 * time.Second)
	if err := json.Unmarshal([]byte(first), &ack); err != nil || ack.Method != "notifications/subscriptions/acknowledged" ||
		string(ack.Params.Meta[bus.MetaSubscriptionID]) != `"listen-7"` {
		t.Fatalf("first message %s, want the acknowledgement tagged listen-7", first)
	}
	if n := ack.Params.Notifications; len(n) != 2 || n["toolsListChanged"] != true || n["promptsListChanged"] != true {
		t.Fatalf("agreed %v, want tools and prompts list changes only", n)
	}
	var change struct {
		Method string
		Params struct {
			Meta map[string]json.RawMessage `json:"_meta"`
		}
	}
	msg := ""
	for n := 0; msg == ""; n++ { // until the worker's GET stream is open to hear it
		addTool(alpha, fmt.Sprintf("fresh%d", n))
		msg = next(300 * time.Millisecond)
	}
	if err := json.Unmarshal([]byte(msg), &change); err != nil || change.Method != "notifications/tools/list_changed" ||
		string(change.Params.Meta[bus.MetaSubscriptionID]) != `"listen-7"` {
		t.Fatalf("after the change: %s, want tools/list_changed tagged listen-7", msg)
	}
}

// A 2026-07-28 upstream's list changes reach a 2026-07-28 client too: the
// worker holds a subscriptions/listen upstream, the ingress one downstream.
func TestStatelessListenHearsAStatelessUpstream(t *testing.T) {
	g, nova := eraGateway(t, true, false)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	heard := make(chan struct{}, 8)
	cs := modernClient(t, g.URL()+"/mcp/nova", &mcp.ClientOptions{ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
		heard <- struct{}{}
	}})
	if _, err := cs.ListTools(ctx, nil); err != nil { // the worker knows nova, and listens to it
		t.Fatal(err)
	}
	select {
	case <-nova.listening:
	case <-ctx.Done():
		t.Fatalf("the worker opened no listen upstream: %v", nova.saw())
	}
	nova.srv.AddTool(&mcp.Tool{Name: "fresh", InputSchema: json.RawMessage(`{"type":"object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	select {
	case <-heard:
	case <-ctx.Done():
		t.Fatal("no tools/list_changed from the stateless upstream reached the client")
	}
	tools, err := cs.ListTools(ctx, nil)
	if err != nil || !strings.Contains(toolNames(tools), "fresh") {
		t.Fatalf("after the change: %s %v (the worker's cache should have dropped the old list)", toolNames(tools), err)
	}
}
