package agentworkers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const agentKey = "agent-secret-key-0123456789"

// fakeAgent is an A2A 1.0 agent: SendMessage answers a completed task
// whose metadata echoes the Authorization it got (an agent that quotes its
// credential), SendStreamingMessage three events, GetTask and CancelTask
// the task. It fails the test on a request without the agent's key or in
// the 0.3 wire.
func fakeAgent(t *testing.T) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+agentKey || r.Header.Get("X-Team") != "blue" {
			t.Errorf("agent got Authorization %q, X-Team %q", r.Header.Get("Authorization"), r.Header.Get("X-Team"))
		}
		if r.Header.Get("A2A-Version") != "1.0" {
			t.Errorf("agent got A2A-Version %q", r.Header.Get("A2A-Version"))
		}
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		task := `{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"},"artifacts":[{"artifactId":"a1","parts":[{"text":"hello"}]}],"metadata":{"saw":"` + r.Header.Get("Authorization") + `"}}`
		answer := func(result string) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, result)
		}
		switch req.Method {
		case "SendMessage":
			answer(`{"task":` + task + `}`)
		case "GetTask", "CancelTask":
			answer(task)
		case "SendStreamingMessage":
			w.Header().Set("Content-Type", "text/event-stream")
			for _, ev := range []string{`{"task":{"id":"t1","contextId":"c1","status":{"state":"TASK_STATE_SUBMITTED"}}}`,
				`{"statusUpdate":{"taskId":"t1","contextId":"c1","status":{"state":"TASK_STATE_WORKING"}}}`,
				`{"statusUpdate":{"taskId":"t1","contextId":"c1","status":{"state":"TASK_STATE_COMPLETED"}}}`} {
				fmt.Fprintf(w, "data: {\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":%s}\n\n", req.ID, ev)
			}
		default:
			answer(`{}`)
			t.Errorf("agent got method %q", req.Method)
		}
	}))
}

func startWorkers(t *testing.T, ns *server.Server, agents ...config.Agent) *nats.Conn {
	t.Helper()
	nc := bustest.Conn(t, ns)
	s, err := Start(nc, agents, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return nc
}

func pinned(url string) config.Agent {
	return config.Agent{Name: "helper", URL: url, ProtocolVersion: "1.0", APIKey: agentKey,
		Headers: map[string]string{"X-Team": "blue"}, Card: json.RawMessage(`{"name":"Helper","url":"` + url + `"}`)}
}

func ask(t *testing.T, nc *nats.Conn, subject string, env bus.Envelope, body string) *nats.Msg {
	t.Helper()
	m := &nats.Msg{Subject: subject, Data: []byte(body), Header: env.Header()}
	resp, err := nc.RequestMsg(m, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func internal() bus.Envelope {
	return bus.Envelope{RequestID: "r1", IPClass: bus.Internal, Caller: bus.Identity{KeyID: "k", Permissions: bus.AllowAll()}}
}

// A 0.3 caller of an agent pinned to 1.0: the request goes out in 1.0
// with the agent's credentials, the answer comes back in 0.3 with the
// caller's id, and the credential the agent quoted is gone.
func TestTranslatesAndHoldsTheCredential(t *testing.T) {
	ag := fakeAgent(t)
	defer ag.Close()
	nc := startWorkers(t, bustest.Server(t), pinned(ag.URL))
	for method, want := range map[string]string{
		"message/send": `"kind":"task"`, "tasks/get": `"state":"completed"`, "tasks/cancel": `"kind":"task"`,
	} {
		params := `{"id":"t1"}`
		if method == "message/send" {
			params = `{"message":{"kind":"message","messageId":"m1","role":"user","parts":[{"kind":"text","text":"hi"}]}}`
		}
		resp := ask(t, nc, bus.AgentRPC("helper"), internal(), `{"jsonrpc":"2.0","id":"c-7","method":"`+method+`","params":`+params+`}`)
		if e := bus.ReplyError(resp); e != nil {
			t.Fatalf("%s: %v", method, e)
		}
		got := string(resp.Data)
		if !strings.Contains(got, want) || !strings.Contains(got, `"id":"c-7"`) || !strings.Contains(got, `"text":"hello"`) {
			t.Errorf("%s: %s", method, got)
		}
		if strings.Contains(got, agentKey) || !strings.Contains(got, "[redacted]") {
			t.Errorf("%s: the agent's credential came back: %s", method, got)
		}
	}
}

// A stream's events go to the POST's stream subject in order, each in the
// caller's wire, and the answer says they did.
func TestStreamEventsGoToTheStream(t *testing.T) {
	ag := fakeAgent(t)
	defer ag.Close()
	ns := bustest.Server(t)
	nc := startWorkers(t, ns, pinned(ag.URL))
	sub, err := bustest.Conn(t, ns).SubscribeSync(bus.ClientSubject("test.stream.s1", bus.A2ASender))
	if err != nil {
		t.Fatal(err)
	}
	env := internal()
	env.Stream = "test.stream.s1"
	resp := ask(t, nc, bus.AgentRPC("helper"), env, `{"jsonrpc":"2.0","id":3,"method":"message/stream","params":{"message":{"kind":"message","messageId":"m","role":"user","parts":[{"kind":"text","text":"go"}]}}}`)
	if e := bus.ReplyError(resp); e != nil || resp.Header.Get(bus.HeaderA2AStreamed) != "true" {
		t.Fatalf("answer %v, streamed %q", e, resp.Header.Get(bus.HeaderA2AStreamed))
	}
	for _, want := range []string{`"kind":"task"`, `"state":"working"`, `"final":true`} {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatalf("event %s: %v", want, err)
		}
		if !strings.Contains(string(m.Data), want) || !strings.Contains(string(m.Data), `"id":3`) {
			t.Errorf("event %s, want %s", m.Data, want)
		}
	}
}

// An external caller does not see an internal-only agent (the answer of
// an agent that does not exist), a public one it does; a key whose agents
// leave the agent out is refused, naming its list; the card and the list
// follow the same rules.
func TestVisibilityAndPermission(t *testing.T) {
	ag := fakeAgent(t)
	defer ag.Close()
	hidden := pinned(ag.URL)
	public := pinned(ag.URL)
	public.Name, public.Public = "open", true
	nc := startWorkers(t, bustest.Server(t), hidden, public)

	ext := internal()
	ext.IPClass = bus.External
	for _, subject := range []string{bus.AgentRPC("helper"), bus.AgentCard("helper")} {
		e := bus.ReplyError(ask(t, nc, subject, ext, `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t1"}}`))
		if e == nil || e.Kind != bus.ErrAgentNotFound || e.Message != bus.UnknownAgent("helper").Message {
			t.Errorf("%s, external caller: %v, want the unknown agent's answer", subject, e)
		}
	}
	if e := bus.ReplyError(ask(t, nc, bus.AgentCard("open"), ext, "")); e != nil {
		t.Errorf("public agent's card, external caller: %v", e)
	}

	limited := internal()
	limited.Caller.Permissions = bus.Permissions{AllServers: true, AllModels: true, Agents: []bus.AgentScope{{Of: "key", Agents: []string{"open"}}}}
	e := bus.ReplyError(ask(t, nc, bus.AgentRPC("helper"), limited, `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t1"}}`))
	if e == nil || e.Kind != bus.ErrAgentNotAllowed || !strings.Contains(e.Message, "the key's object_permission.agents [open]") {
		t.Errorf("a key without the agent: %v", e)
	}
	unreadable := internal()
	unreadable.Caller.Permissions = bus.DecodePermissions("{not json")
	if e := bus.ReplyError(ask(t, nc, bus.AgentRPC("open"), unreadable, `{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"id":"t1"}}`)); e == nil || e.Kind != bus.ErrAgentNotAllowed {
		t.Errorf("unreadable permissions: %v", e)
	}

	var list []bus.AgentSummary
	_ = json.Unmarshal(ask(t, nc, bus.SubjectAgentList, limited, "").Data, &list)
	if len(list) != 1 || list[0].AgentName != "open" || !list[0].Params.MakePublic {
		t.Errorf("list for a key limited to open: %+v", list)
	}
	_ = json.Unmarshal(ask(t, nc, bus.SubjectAgentList, ext, "").Data, &list)
	if len(list) != 1 || list[0].AgentName != "open" {
		t.Errorf("list for an external caller: %+v", list)
	}
	if strings.Contains(string(ask(t, nc, bus.SubjectAgentList, internal(), "").Data), agentKey) {
		t.Error("the list holds the agent's key")
	}
}

// An agent's HTTP failures become the gateway's errors; a credential it
// refuses is never quoted, and a JSON-RPC error it answers with a status
// is the agent's own.
func TestAgentErrors(t *testing.T) {
	cases := []struct {
		status int
		body   string
		want   bus.Kind
		says   string
	}{
		{401, `{"error":"bad key ` + agentKey + `"}`, bus.ErrUpstreamAuth, "refused the gateway's credentials"},
		{400, `{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"bad params for ` + agentKey + `"}}`, bus.ErrBadRequest, "bad params for [redacted]"},
		{503, `down`, bus.ErrUpstreamUnavailable, "status 503"},
		{504, ``, bus.ErrUpstreamTimeout, "timed out"},
	}
	for _, c := range cases {
		ag := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(c.status)
			_, _ = io.WriteString(w, c.body)
		}))
		nc := startWorkers(t, bustest.Server(t), pinned(ag.URL))
		e := bus.ReplyError(ask(t, nc, bus.AgentRPC("helper"), internal(), `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t1"}}`))
		ag.Close()
		if e == nil || e.Kind != c.want || !strings.Contains(e.Message, c.says) || strings.Contains(e.Message, agentKey) {
			t.Errorf("status %d: %+v, want %s saying %q", c.status, e, c.want.Code, c.says)
		}
	}
}

// Every call that reached the agent is a usage event, on the agent usage
// subject, naming the agent, the method and the caller.
func TestUsageEvents(t *testing.T) {
	ag := fakeAgent(t)
	defer ag.Close()
	ns := bustest.Server(t)
	nc := startWorkers(t, ns, pinned(ag.URL))
	js, _ := jetstream.New(nc)
	if _, err := bus.UsageStream(context.Background(), js, bus.UsageStreamOptions{}); err != nil {
		t.Fatal(err)
	}
	env := internal()
	env.RequestID, env.Caller.Team, env.Caller.Org = "req-usage", "t9", "o9"
	if e := bus.ReplyError(ask(t, nc, bus.AgentRPC("helper"), env, `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t1"}}`)); e != nil {
		t.Fatal(e)
	}
	var ev bus.UsageEvent
	bustest.Eventually(t, 10*time.Second, "the usage event", func() error {
		var got *bus.UsageMsg
		err := bus.ReadUsage(context.Background(), nc, bus.AgentUsageFilter("", "helper", ""), bus.UsageStart{}, false, func(m bus.UsageMsg) error {
			got = &m
			return nil
		})
		if err != nil || got == nil {
			return fmt.Errorf("none yet (%v)", err)
		}
		if got.Subject != "mcpbus.v1.usage.a2a.t9.helper.GetTask" {
			return fmt.Errorf("subject %s", got.Subject)
		}
		return json.Unmarshal(got.Data, &ev)
	})
	if ev.Kind != bus.UsageKindAgent || ev.Server != "helper" || ev.Method != "GetTask" || ev.Status != "ok" || ev.RequestID != "req-usage" || ev.KeyID != "k" || ev.OrgID != "o9" || ev.BytesOut == 0 {
		t.Fatalf("event %+v", ev)
	}
}

// An agent written to the agents bucket (as the registry writes it: its
// literal key sealed) is served at once by a worker that follows the
// bucket, replaced when it changes and stopped when it is deleted; a
// bucket agent named like a file agent is left out.
func TestAgentsFromTheBucket(t *testing.T) {
	ag := fakeAgent(t)
	defer ag.Close()
	ns := bustest.Server(t)
	admin := bustest.Conn(t, ns)
	js, _ := jetstream.New(admin)
	kv, err := bus.AgentsBucket(context.Background(), js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	key, _ := bus.NewSecretKey("test-secret-key-material-0123")
	put := func(name, url string) {
		rec := bus.AgentRecord{AgentID: name, AgentName: name, Card: json.RawMessage(`{"name":"B","url":"` + url + `","protocolVersion":"1.0"}`),
			Params: bus.AgentRecordParams{APIKey: agentKey, Headers: map[string]string{"X-Team": "blue"}}, Source: bus.AgentSourceAPI}
		sealed, err := key.SealAgent(rec)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(sealed)
		if _, err := kv.Put(context.Background(), name, b); err != nil {
			t.Fatal(err)
		}
	}
	file := pinned(ag.URL)
	put("helper", "http://127.0.0.1:1/never") // a file agent's name: the file's wins
	nc := bustest.Conn(t, ns)
	s, err := Start(nc, []config.Agent{file}, Options{Follow: true, Secrets: key})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Stop() }()

	get := `{"jsonrpc":"2.0","id":1,"method":"GetTask","params":{"id":"t1"}}`
	caller := internal()
	if e := bus.ReplyError(ask(t, nc, bus.AgentRPC("helper"), internal(), get)); e != nil {
		t.Fatalf("the file's helper: %v", e)
	}
	put("from-api", ag.URL)
	bustest.Eventually(t, 10*time.Second, "the bucket's agent served", func() error {
		m, err := nc.RequestMsg(&nats.Msg{Subject: bus.AgentRPC("from-api"), Data: []byte(get), Header: caller.Header()}, 5*time.Second)
		if err != nil {
			return err
		}
		if e := bus.ReplyError(m); e != nil {
			return e
		}
		return nil
	})
	var list []bus.AgentSummary
	_ = json.Unmarshal(ask(t, nc, bus.SubjectAgentList, internal(), "").Data, &list)
	if len(list) != 2 || list[0].AgentName != "helper" || list[1].AgentName != "from-api" {
		t.Fatalf("list: %+v", list)
	}
	if err := kv.Delete(context.Background(), "from-api"); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 10*time.Second, "the deleted agent stopped", func() error {
		_, err := nc.RequestMsg(&nats.Msg{Subject: bus.AgentRPC("from-api"), Data: []byte(get), Header: caller.Header()}, 5*time.Second)
		if !errors.Is(err, nats.ErrNoResponders) {
			return fmt.Errorf("still answered (%v)", err)
		}
		return nil
	})
}
