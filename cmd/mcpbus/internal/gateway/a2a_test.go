package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
)

// The agent's credential: it may reach the agent, never a caller or a log
// (the suite's secret scan).
const a2aAgentKey = "agent-credential-for-the-test-0001"

// a2aAgent is an A2A 1.0 agent (the wire of @a2a-js/sdk 1.x, in Go):
// SendMessage answers a completed task whose metadata quotes the
// Authorization it got, SendStreamingMessage sends a task, then holds its
// next events until release is closed, GetTask and CancelTask answer the
// task. It records the Authorization of every request.
type a2aAgent struct {
	*httptest.Server
	release chan struct{}
	mu      sync.Mutex
	auth    []string
}

func newA2AAgent(t *testing.T) *a2aAgent {
	a := &a2aAgent{release: make(chan struct{})}
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.auth = append(a.auth, r.Header.Get("Authorization"))
		a.mu.Unlock()
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Message struct {
					Parts []struct {
						Text string `json:"text"`
					} `json:"parts"`
				} `json:"message"`
			} `json:"params"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		text := ""
		if len(req.Params.Message.Parts) > 0 {
			text = req.Params.Message.Parts[0].Text
		}
		task := func(state string) string {
			return `{"id":"task-1","contextId":"ctx-1","status":{"state":"` + state + `"},"artifacts":[{"artifactId":"a1","parts":[{"text":"echo: ` + text + `"}]}],"metadata":{"saw":"` + r.Header.Get("Authorization") + `"}}`
		}
		result := func(res string) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, res)
		}
		event := func(ev string) {
			fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", req.ID, ev)
			w.(http.Flusher).Flush()
		}
		switch req.Method {
		case "SendMessage":
			result(`{"task":` + task("TASK_STATE_COMPLETED") + `}`)
		case "GetTask":
			result(task("TASK_STATE_COMPLETED"))
		case "CancelTask":
			result(task("TASK_STATE_CANCELED"))
		case "SendStreamingMessage":
			w.Header().Set("Content-Type", "text/event-stream")
			event(`{"task":{"id":"task-2","contextId":"ctx-2","status":{"state":"TASK_STATE_SUBMITTED"}}}`)
			select {
			case <-a.release:
			case <-r.Context().Done():
				return
			}
			event(`{"artifactUpdate":{"taskId":"task-2","contextId":"ctx-2","artifact":{"artifactId":"a1","parts":[{"text":"late"}]},"lastChunk":true}}`)
			event(`{"statusUpdate":{"taskId":"task-2","contextId":"ctx-2","status":{"state":"TASK_STATE_COMPLETED"}}}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"error":{"code":-32601,"message":"no method %s"}}`, req.ID, req.Method)
		}
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *a2aAgent) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.auth...)
}

// a2aGateway runs a gateway with two agents on agent: helper (pinned to
// 1.0, internal-only, holding the agent's key) and open (public, the
// request's wire), plus extra general settings.
func a2aGateway(t *testing.T, agent *a2aAgent, general string) *testGateway {
	t.Helper()
	return startGateway(t, `
general_settings: {master_key: `+master+general+`}
agents:
  - agent_name: helper
    agent_card_params:
      name: Helper
      description: answers questions
      url: `+agent.URL+`
      protocolVersion: "1.0"
      securitySchemes: {agentKey: {type: http, scheme: bearer}}
      capabilities: {streaming: true, extendedAgentCard: true}
    litellm_params: {api_key: os.environ/AGENT_KEY}
  - agent_name: open
    agent_card_params: {name: Open, url: `+agent.URL+`}
    litellm_params: {make_public: true, access_groups: [public-agents], api_key: os.environ/AGENT_KEY}
`, map[string]string{"AGENT_KEY": a2aAgentKey})
}

// a2aResponse is a JSON-RPC response as a client reads it.
type a2aResponse struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int            `json:"code"`
		Message string         `json:"message"`
		Data    map[string]any `json:"data"`
	} `json:"error"`
}

// a2aCall POSTs one JSON-RPC request to path and reads the JSON answer.
func a2aCall(t *testing.T, url, key, method, params string) (int, a2aResponse, string) {
	t.Helper()
	status, _, body := rest(t, http.MethodPost, url, key, `{"jsonrpc":"2.0","id":"req-1","method":"`+method+`","params":`+params+`}`)
	var r a2aResponse
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("%s %s: HTTP %d, not JSON: %s", method, url, status, body)
	}
	return status, r, body
}

const (
	sendParams03 = `{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"}]}}`
	sendParams10 = `{"message":{"messageId":"m1","role":"ROLE_USER","parts":[{"text":"hi"}]}}`
)

// Both wires reach an agent pinned to 1.0 through the bus: a 0.3 caller
// gets 0.3 answers, a 1.0 caller 1.0 ones, for send, get and cancel; the
// agent gets the agent's credential and never the caller's key, and the
// credential the agent quotes back is gone from what the caller reads.
func TestA2AThroughTheBus(t *testing.T) {
	agent := newA2AAgent(t)
	g := a2aGateway(t, agent, "")
	u := g.URL() + "/a2a/helper"

	status, r, body := a2aCall(t, u, master, "message/send", sendParams03)
	if status != http.StatusOK || r.Error != nil || string(r.ID) != `"req-1"` ||
		!strings.Contains(string(r.Result), `"kind":"task"`) || !strings.Contains(string(r.Result), `"state":"completed"`) ||
		!strings.Contains(string(r.Result), `{"kind":"text","text":"echo: hi"}`) {
		t.Fatalf("0.3 message/send: HTTP %d %s", status, body)
	}
	if strings.Contains(body, a2aAgentKey) || !strings.Contains(body, "[redacted]") {
		t.Fatalf("the agent's credential reached the caller: %s", body)
	}
	status, r, body = a2aCall(t, g.URL()+"/a2a/helper/message/send", master, "SendMessage",
		`{"message":{"messageId":"m2","role":"ROLE_USER","parts":[{"text":"v1"}]}}`)
	if status != http.StatusOK || !strings.Contains(string(r.Result), `{"task":{`) || !strings.Contains(string(r.Result), `"TASK_STATE_COMPLETED"`) {
		t.Fatalf("1.0 SendMessage (LiteLLM's alias route): HTTP %d %s", status, body)
	}
	for method, want := range map[string]string{"tasks/get": `"state":"completed"`, "tasks/cancel": `"state":"canceled"`,
		"GetTask": `"TASK_STATE_COMPLETED"`, "CancelTask": `"TASK_STATE_CANCELED"`} {
		status, r, body = a2aCall(t, u, master, method, `{"id":"task-1"}`)
		if status != http.StatusOK || r.Error != nil || !strings.Contains(string(r.Result), want) {
			t.Errorf("%s: HTTP %d %s, want %s", method, status, body, want)
		}
	}
	for _, auth := range agent.seen() {
		if auth != "Bearer "+a2aAgentKey {
			t.Fatalf("the agent got Authorization %q, want its own credential", auth)
		}
	}

	// An extended card would name the agent's own URL: refused, naming the
	// card route; a method without a translation is named as such.
	if _, r, _ := a2aCall(t, u, master, "GetExtendedAgentCard", `{}`); r.Error == nil || r.Error.Code != -32601 || !strings.Contains(r.Error.Message, "/a2a/helper/.well-known/agent-card.json") {
		t.Errorf("extended card: %+v", r.Error)
	}
	if _, r, _ := a2aCall(t, u, master, "tasks/pushNotificationConfig/set", `{}`); r.Error == nil || !strings.Contains(r.Error.Message, "not translated") {
		t.Errorf("push config from a 0.3 caller to a 1.0 agent: %+v", r.Error)
	}
	// Without a key: 401, as a JSON-RPC error.
	if status, r, _ := a2aCall(t, u, "", "tasks/get", `{"id":"task-1"}`); status != http.StatusUnauthorized || r.Error == nil {
		t.Errorf("no key: HTTP %d %+v", status, r.Error)
	}
	if leaks := scanForSecrets(); len(leaks) > 0 {
		t.Fatal(strings.Join(leaks, "\n"))
	}
}

// Events go to the caller as the agent sends them, not when it is done:
// the agent holds its second event until the caller has the first. Each
// event is a JSON-RPC response in the caller's wire.
func TestA2AStreamRelaysEventsAsTheyCome(t *testing.T) {
	agent := newA2AAgent(t)
	g := a2aGateway(t, agent, "")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // a guard, not a measure
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL()+"/a2a/helper",
		strings.NewReader(`{"jsonrpc":"2.0","id":7,"method":"message/stream","params":`+sendParams03+`}`))
	req.Header.Set("Authorization", "Bearer "+master)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("HTTP %d %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	events := bufio.NewScanner(resp.Body)
	next := func() string {
		for events.Scan() {
			if data, ok := strings.CutPrefix(events.Text(), "data: "); ok {
				recordBody([]byte(data))
				return data
			}
		}
		t.Fatalf("the stream ended early: %v", events.Err())
		return ""
	}
	if first := next(); !strings.Contains(first, `"id":7`) || !strings.Contains(first, `"kind":"task"`) || !strings.Contains(first, `"state":"submitted"`) {
		t.Fatalf("first event: %s", first)
	}
	close(agent.release) // the agent sends the rest only now
	if ev := next(); !strings.Contains(ev, `"kind":"artifact-update"`) || !strings.Contains(ev, `"text":"late"`) {
		t.Fatalf("second event: %s", ev)
	}
	if ev := next(); !strings.Contains(ev, `"kind":"status-update"`) || !strings.Contains(ev, `"final":true`) {
		t.Fatalf("last event: %s", ev)
	}
	if events.Scan() && strings.TrimSpace(events.Text()) != "" {
		t.Fatalf("more after the last event: %q", events.Text())
	}
}

// A key whose agents leave an agent out gets 403 with a JSON-RPC error
// naming why, for calls and the card, and does not see it in the list; an
// agent_access_groups grant admits the agents in the group.
func TestA2APermissions(t *testing.T) {
	agent := newA2AAgent(t)
	g := a2aGateway(t, agent, "")
	onlyOpen := generateKey(t, g.URL(), map[string]any{"key_alias": "open-only", "object_permission": map[string]any{"agents": []string{"open"}}})
	byGroup := generateKey(t, g.URL(), map[string]any{"key_alias": "by-group", "object_permission": map[string]any{"agent_access_groups": []string{"public-agents"}}})
	before := len(agent.seen())
	for _, key := range []string{onlyOpen, byGroup} {
		status, r, body := a2aCall(t, g.URL()+"/a2a/helper", key, "message/send", sendParams03)
		if status != http.StatusForbidden || r.Error == nil || r.Error.Code != -32042 || r.Error.Data["mcpbus_code"] != "MCPBUS_AGENT_NOT_ALLOWED" ||
			!strings.Contains(r.Error.Message, `agent "helper" is not allowed for your key`) || !strings.Contains(r.Error.Message, "object_permission.agents") {
			t.Errorf("denied agent: HTTP %d %s", status, body)
		}
		if status, _, body := rest(t, http.MethodGet, g.URL()+"/a2a/helper/.well-known/agent-card.json", key, ""); status != http.StatusForbidden {
			t.Errorf("denied agent's card: HTTP %d %s", status, body)
		}
		if status, r, body := a2aCall(t, g.URL()+"/a2a/open", key, "SendMessage", sendParams10); status != http.StatusOK || r.Error != nil {
			t.Errorf("permitted agent: HTTP %d %s", status, body)
		}
		_, _, list := rest(t, http.MethodGet, g.URL()+"/v1/agents", key, "")
		if !strings.Contains(list, `"agent_name":"open"`) || strings.Contains(list, `"agent_name":"helper"`) {
			t.Errorf("list for a key limited to open: %s", list)
		}
	}
	if got := len(agent.seen()) - before; got != 2 {
		t.Errorf("the agent got %d calls, want 2 (the permitted ones): a denied call reached it", got)
	}
	_, _, list := rest(t, http.MethodGet, g.URL()+"/v1/agents", master, "")
	if !strings.Contains(list, `"agent_name":"open"`) || !strings.Contains(list, `"agent_name":"helper"`) || strings.Contains(list, a2aAgentKey) {
		t.Errorf("list for the master key: %s", list)
	}
}

// The agent admin API (LiteLLM's POST /v1/agents, PUT and DELETE
// /v1/agents/{agent_id}, master key only): an agent written there is
// served at once by the agent workers, with its credential, which no
// answer shows; it changes and goes away the same way; an agent of the
// config file cannot be written.
func TestA2AAgentAdminAPI(t *testing.T) {
	agent := newA2AAgent(t)
	g := a2aGateway(t, agent, "")
	const apiKey = "api-written-agent-credential-0002"
	registerSecret(apiKey)
	body := `{"agent_name":"made","agent_card_params":{"name":"Made","url":"` + agent.URL + `","protocolVersion":"1.0"},"litellm_params":{"api_key":"` + apiKey + `","make_public":false}}`

	user := generateKey(t, g.URL(), map[string]any{"key_alias": "not-admin"})
	if status, _, out := rest(t, http.MethodPost, g.URL()+"/v1/agents", user, body); status != http.StatusForbidden {
		t.Fatalf("POST /v1/agents with a virtual key: HTTP %d %s", status, out)
	}
	status, _, out := rest(t, http.MethodPost, g.URL()+"/v1/agents", master, body)
	if status != http.StatusOK || !strings.Contains(out, `"agent_id":"made"`) || !strings.Contains(out, `"api_key":"[redacted]"`) {
		t.Fatalf("POST /v1/agents: HTTP %d %s", status, out)
	}
	call := func() (int, a2aResponse, string) {
		return a2aCall(t, g.URL()+"/a2a/made", master, "GetTask", `{"id":"task-1"}`)
	}
	waitFor(t, "the new agent served", func() bool { s, _, _ := call(); return s == http.StatusOK })
	if _, _, out := call(); !strings.Contains(out, `"TASK_STATE_COMPLETED"`) || strings.Contains(out, apiKey) {
		t.Fatalf("the new agent's answer: %s", out)
	}
	if seen := agent.seen(); seen[len(seen)-1] != "Bearer "+apiKey {
		t.Fatalf("the agent got Authorization %q, want the written credential", seen[len(seen)-1])
	}
	if _, _, list := rest(t, http.MethodGet, g.URL()+"/v1/agents", master, ""); !strings.Contains(list, `"agent_name":"made"`) || strings.Contains(list, apiKey) {
		t.Fatalf("list: %s", list)
	}

	// PUT: "[redacted]" keeps the credential; the card changes.
	upd := strings.Replace(strings.Replace(body, apiKey, "[redacted]", 1), `"name":"Made"`, `"name":"Made again"`, 1)
	if status, _, out := rest(t, http.MethodPut, g.URL()+"/v1/agents/made", master, upd); status != http.StatusOK {
		t.Fatalf("PUT: HTTP %d %s", status, out)
	}
	waitFor(t, "the changed card", func() bool {
		_, _, card := rest(t, http.MethodGet, g.URL()+"/a2a/made/.well-known/agent-card.json", master, "")
		return strings.Contains(card, `"name":"Made again"`)
	})
	if status, _, _ := call(); status != http.StatusOK || agent.seen()[len(agent.seen())-1] != "Bearer "+apiKey {
		t.Fatalf("after the update: HTTP %d, the agent got %q", status, agent.seen()[len(agent.seen())-1])
	}

	if status, _, out := rest(t, http.MethodPut, g.URL()+"/v1/agents/helper", master, body); status != http.StatusConflict || !strings.Contains(out, "config file") {
		t.Errorf("PUT of a config agent: HTTP %d %s", status, out)
	}
	if status, _, out := rest(t, http.MethodDelete, g.URL()+"/v1/agents/made", master, ""); status != http.StatusOK {
		t.Fatalf("DELETE: HTTP %d %s", status, out)
	}
	waitFor(t, "the deleted agent gone", func() bool { s, _, _ := call(); return s == http.StatusNotFound })
	if leaks := scanForSecrets(); len(leaks) > 0 {
		t.Fatal(strings.Join(leaks, "\n"))
	}
}

// waitFor waits until cond holds: a change the agent workers apply as
// they follow the agents bucket (bustest.Eventually's bound, no timing).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	bustest.Eventually(t, 10*time.Second, what, func() error {
		if !cond() {
			return errors.New("not yet")
		}
		return nil
	})
}
