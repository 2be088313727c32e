package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// 2026-07-28 clients in front of session-era upstreams that ask for input
// mid-call (elicitation, sampling): the worker parks the upstream call and
// answers input_required; the client's retry, through any ingress, carries
// the answer upstream (plan: docs/plans/mcp-2026-07-28.md, step 7).

// The go-sdk client answers with its handlers and retries by itself; the
// same tools work on one server's endpoint and on the aggregation, and
// progress reaches the client in both rounds.
func TestStatelessClientAnswersASessionUpstream(t *testing.T) {
	g, _, _ := statelessGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	progress := &progressLog{}
	opts := &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
		},
		CreateMessageHandler: func(_ context.Context, r *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Content: &mcp.TextContent{Text: "an answer"}, Model: "test", Role: "assistant"}, nil
		},
		ProgressNotificationHandler: progress.handler,
	}
	one := modernClient(t, g.URL()+"/mcp/alpha", opts)
	if got, err := relayCall(ctx, one, &mcp.CallToolParams{Name: "elicit", Arguments: map[string]any{}}); err != nil || got != "alpha: accept Ada" {
		t.Fatalf("elicit on /mcp/alpha: %q %v", got, err)
	}
	all := modernClient(t, g.URL()+"/mcp", opts)
	params := &mcp.CallToolParams{Name: "beta__sample", Arguments: map[string]any{}}
	params.SetProgressToken("p-1")
	if got, err := relayCall(ctx, all, params); err != nil || got != "beta sampled: an answer" {
		t.Fatalf("beta__sample on /mcp: %q %v", got, err)
	}
	// Progress 1 comes in the first round. Progress 2 is sent the moment
	// before the result, on the retry's stream, and a call that goes through
	// the router (as a retry does) may get its answer first: it is not
	// asserted (a limit of every router-path call, noted in ARCHITECTURE.md).
	if got := progress.got(); len(got) == 0 || got[0].Progress != 1 || len(got) > 2 || len(got) == 2 && got[1].Progress != 2 {
		for _, p := range got {
			t.Logf("progress %v %s", p.Progress, p.Message)
		}
		t.Fatalf("progress: want 1 (before the question), then at most 2 (after the answer)")
	}
	if n := sessionCount(t, g); n != 0 {
		t.Errorf("the gateway holds %d sessions, want none", n)
	}
}

// On the wire, across ingress replicas: the first POST gets input_required
// with the upstream's request and a requestState; the retry with the answer
// goes to another ingress and gets the result. A requestState changed by
// the client is refused, and a client that did not declare the capability
// is not asked.
func TestParkedCallAcrossIngressReplicas(t *testing.T) {
	g, _, _ := statelessGateway(t)
	other := statelessReplica(t, g)
	first := modernPost(t, g.URL()+"/mcp/alpha", "tools/call", "elicit", `{"name":"elicit","arguments":{}}`)
	if first.status != 200 {
		t.Fatalf("first call: HTTP %d %s", first.status, first.body)
	}
	// modernBody declares no capabilities: the upstream session it goes
	// through declared none either, and the tool fails saying so.
	if !strings.Contains(string(first.body), "does not support elicitation") || strings.Contains(string(first.body), "input_required") {
		t.Fatalf("a client without the elicitation capability: %s", first.body)
	}
	withCaps := func(params string) string {
		return strings.Replace(modernBody("tools/call", params, `"2026-07-28"`), `clientCapabilities":{}`, `clientCapabilities":{"elicitation":{}}`, 1)
	}
	h := http.Header{"Authorization": {"Bearer " + master}, "Mcp-Protocol-Version": {bus.FirstModernVersion}, "Mcp-Method": {"tools/call"}, "Mcp-Name": {"elicit"}}
	r := modernRaw(t, g.URL()+"/mcp/alpha", h, withCaps(`{"name":"elicit","arguments":{}}`))
	var ir struct {
		Result struct {
			ResultType    string `json:"resultType"`
			InputRequests map[string]struct {
				Method string          `json:"method"`
				Params json.RawMessage `json:"params"`
			} `json:"inputRequests"`
			RequestState string `json:"requestState"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.body, &ir); err != nil || ir.Result.ResultType != "input_required" || len(ir.Result.InputRequests) != 1 || ir.Result.RequestState == "" {
		t.Fatalf("first round: HTTP %d %s, want input_required", r.status, r.body)
	}
	var key string
	for k, req := range ir.Result.InputRequests {
		key = k
		if req.Method != "elicitation/create" || !strings.Contains(string(req.Params), "your name?") {
			t.Fatalf("input request %s %s", req.Method, req.Params)
		}
	}
	state, _ := json.Marshal(ir.Result.RequestState)
	retry := func(url, state string) modernResponse {
		return modernRaw(t, url+"/mcp/alpha", h, withCaps(`{"name":"elicit","arguments":{},"inputResponses":{"`+key+`":{"action":"accept","content":{"name":"Bo"}}},"requestState":`+state+`}`))
	}
	// The secret at its end changed: the same park, not this caller's to resume.
	tampered := string(state[:len(state)-3]) + `zz"`
	if bad := retry(other, tampered); bad.status != 400 || bad.err.Code != -32602 {
		t.Fatalf("a changed requestState: HTTP %d %s, want 400 -32602", bad.status, bad.body)
	}
	done := retry(other, string(state))
	if done.status != 200 || !strings.Contains(string(done.body), "alpha: accept Bo") || strings.Contains(string(done.body), "input_required") {
		t.Fatalf("the retry through another ingress: HTTP %d %s", done.status, done.body)
	}
	// The call is over: its state names nothing any more.
	if again := retry(g.URL(), string(state)); again.status != 400 || again.err.Code != -32602 {
		t.Fatalf("a second retry of a finished call: HTTP %d %s", again.status, again.body)
	}
}

// A 2026-07-28 client that declared nothing it could be asked (no
// elicitation, sampling or roots) calls such a tool: the upstream's question
// is refused for it (the worker takes the plain path, no park), and the
// client gets the tool's failure naming the capability, not input_required
// or a hang.
func TestStatelessClientThatCannotBeAskedIsNotParked(t *testing.T) {
	g, _, _ := statelessGateway(t)
	r := modernPost(t, g.URL()+"/mcp/alpha", "tools/call", "elicit", `{"name":"elicit","arguments":{}}`)
	if r.status != http.StatusOK || strings.Contains(string(r.body), "input_required") || !strings.Contains(string(r.body), "elicitation") {
		t.Fatalf("elicit from a client that cannot be asked: HTTP %d %s, want the tool's failure naming elicitation", r.status, r.body)
	}
}
