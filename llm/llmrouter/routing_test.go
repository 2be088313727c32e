package llmrouter

import (
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// harness runs the router on a real NATS server with scripted workers:
// each deployment answers as its behaviour says, and asked records which
// deployments each request reached.
type harness struct {
	t     *testing.T
	nc    *nats.Conn
	mu    sync.Mutex
	now   time.Time
	do    map[string]func(m *nats.Msg)
	asked []string
}

func newHarness(t *testing.T, models []config.Model, rt config.Routing) *harness {
	t.Helper()
	ns := bustest.Server(t)
	h := &harness{t: t, nc: bustest.Conn(t, ns), now: time.Unix(1_800_000_000, 0), do: map[string]func(*nats.Msg){}}
	svc, err := Start(h.nc, models, Options{Routing: rt, Now: h.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Stop() })
	admitAll(t, h.nc)
	for _, m := range models {
		id := m.ID
		h.do[id] = h.ok(id)
		if _, err := h.nc.Subscribe(bus.LLMDeploymentRPC(id), func(msg *nats.Msg) {
			h.mu.Lock()
			h.asked = append(h.asked, id)
			f := h.do[id]
			h.mu.Unlock()
			f(msg)
		}); err != nil {
			t.Fatal(err)
		}
	}
	return h
}

// admitAll stands in for auth's LLM limits (tested in auth): every
// request admitted, every spend taken.
func admitAll(t *testing.T, nc *nats.Conn) {
	t.Helper()
	if _, err := nc.Subscribe(bus.SubjectLLMAll, func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) clock() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.now
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.now = h.now.Add(d)
	h.mu.Unlock()
}

func (h *harness) set(id string, f func(*nats.Msg)) {
	h.mu.Lock()
	h.do[id] = f
	h.mu.Unlock()
}

func (h *harness) ok(id string) func(*nats.Msg) {
	return func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: []byte(`{"from":"` + id + `"}`), Header: nats.Header{bus.HeaderLLMDeployment: {id}}})
	}
}

func (h *harness) fail(k bus.Kind, status int) func(*nats.Msg) {
	return func(m *nats.Msg) {
		_ = bus.ReplyTo(h.nc, m.Reply).ErrorWith(bus.Errorf(k, "scripted failure"), nats.Header{bus.HeaderLLMStatus: {strconv.Itoa(status)}})
	}
}

// chat sends one request for model as caller and returns the answer and
// the deployments it reached.
func (h *harness) chat(model string, caller bus.Permissions) (*nats.Msg, []string) {
	h.t.Helper()
	h.mu.Lock()
	h.asked = nil
	h.mu.Unlock()
	env := bus.Envelope{RequestID: "r", Caller: bus.Identity{KeyID: "k", Permissions: caller}, IPClass: bus.Internal}
	resp, err := h.nc.RequestMsg(&nats.Msg{Subject: bus.SubjectLLMChat, Data: []byte(`{"model":"` + model + `","messages":[]}`), Header: env.Header()}, 10*time.Second)
	if err != nil {
		h.t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return resp, slices.Clone(h.asked)
}

func deployment(group, id string, order int) config.Model {
	return config.Model{Name: group, ID: id, Provider: "openai", Upstream: id, Order: order}
}

// A deployment the provider rate-limits cools down at once: the group's
// next requests skip it until cooldown_time has passed; when every
// deployment is cooling the answer is LiteLLM's 429 with the wait.
func TestCooldownSkipsAFailingDeployment(t *testing.T) {
	h := newHarness(t, []config.Model{deployment("g", "a", 1), deployment("g", "b", 2)}, config.Routing{CooldownTime: 30 * time.Second})
	all := bus.AllowAll()
	h.set("a", h.fail(bus.ErrRateLimited, 429))
	if resp, seen := h.chat("g", all); string(resp.Data) != `{"from":"b"}` || !slices.Equal(seen, []string{"a", "b"}) {
		t.Fatalf("first request: %s asked %v", resp.Data, seen)
	}
	if resp, seen := h.chat("g", all); string(resp.Data) != `{"from":"b"}` || !slices.Equal(seen, []string{"b"}) {
		t.Fatalf("a cooling deployment was asked: %s asked %v", resp.Data, seen)
	}
	h.advance(31 * time.Second)
	h.set("a", h.ok("a"))
	if resp, seen := h.chat("g", all); string(resp.Data) != `{"from":"a"}` || !slices.Equal(seen, []string{"a"}) {
		t.Fatalf("after its cooldown: %s asked %v", resp.Data, seen)
	}

	h.set("a", h.fail(bus.ErrRateLimited, 429))
	h.set("b", h.fail(bus.ErrUpstreamAuth, 401))
	h.chat("g", all) // both cool
	resp, seen := h.chat("g", all)
	e := bus.ReplyError(resp)
	if e == nil || e.Kind != bus.ErrRateLimited || e.Message != "All deployments for selected model are in cooldown: model g" || len(seen) != 0 {
		t.Fatalf("every deployment cooling: %+v asked %v", e, seen)
	}
	if e.RetryAfter <= 0 || e.RetryAfter > 30*time.Second {
		t.Fatalf("retry after %s, want the cooldown left", e.RetryAfter)
	}
}

// Failures that are not at once disqualifying cool a deployment past
// allowed_fails in the minute; a refused request is no failure of the
// deployment; a group of one is never cooled, and num_retries tries it
// again.
func TestAllowedFailsAndRetries(t *testing.T) {
	h := newHarness(t, []config.Model{deployment("g", "a", 1), deployment("g", "b", 2), deployment("solo", "s", 0)},
		config.Routing{AllowedFails: 1, NumRetries: 3, NumRetriesSet: true})
	all := bus.AllowAll()
	h.set("a", h.fail(bus.ErrProvider, 500))
	h.chat("g", all) // one failure: allowed
	if _, seen := h.chat("g", all); seen[0] != "a" {
		t.Fatalf("cooled after its allowed failure: asked %v", seen)
	}
	if _, seen := h.chat("g", all); !slices.Equal(seen, []string{"b"}) {
		t.Fatalf("not cooled after two failures with allowed_fails 1: asked %v", seen)
	}

	h.set("s", h.fail(bus.ErrProvider, 500))
	resp, seen := h.chat("solo", all)
	if e := bus.ReplyError(resp); e == nil || e.Kind != bus.ErrProvider || !slices.Equal(seen, []string{"s", "s", "s", "s"}) {
		t.Fatalf("num_retries 3 on a group of one: %v asked %v", e, seen)
	}
	h.set("s", h.fail(bus.ErrProviderRejected, 400))
	if _, seen := h.chat("solo", all); !slices.Equal(seen, []string{"s"}) {
		t.Fatalf("a refused request was retried: asked %v", seen)
	}

	h0 := newHarness(t, []config.Model{deployment("g", "a", 0)}, config.Routing{NumRetriesSet: true})
	h0.set("a", h0.fail(bus.ErrProvider, 500))
	if _, seen := h0.chat("g", all); !slices.Equal(seen, []string{"a"}) {
		t.Fatalf("num_retries 0 retried: asked %v", seen)
	}
}

// Fallbacks: after a group fails, its fallbacks answer (fallbacks, or
// default_fallbacks; context_window_fallbacks after a context error,
// content_policy_fallbacks after a policy refusal), by group or by
// deployment id, never one the key may not use, and never after a refused
// request.
func TestFallbacks(t *testing.T) {
	models := []config.Model{deployment("g", "a", 0), deployment("h", "c", 0), deployment("big", "d", 0), deployment("safe", "e", 0), deployment("other", "f", 0)}
	h := newHarness(t, models, config.Routing{NumRetriesSet: true,
		Fallbacks:              map[string][]string{"g": {"h"}},
		ContextWindowFallbacks: map[string][]string{"g": {"d"}},
		ContentPolicyFallbacks: map[string][]string{"g": {"safe"}},
		DefaultFallbacks:       []string{"other"}})
	all := bus.AllowAll()
	for _, c := range []struct {
		name    string
		kind    bus.Kind
		status  int
		from    string
		asked   []string
		caller  bus.Permissions
		answers string
	}{
		{"any failure: fallbacks", bus.ErrProvider, 500, "c", []string{"a", "c"}, all, "h"},
		{"context window", bus.ErrContextLength, 400, "d", []string{"a", "d"}, all, "big"},
		{"content policy", bus.ErrContentPolicy, 400, "e", []string{"a", "e"}, all, "safe"},
		{"refused request: none", bus.ErrProviderRejected, 400, "", []string{"a"}, all, ""},
		{"a fallback the key may not use", bus.ErrProvider, 500, "", []string{"a"}, bus.Permissions{Models: [][]string{{"g"}}}, ""},
	} {
		h.set("a", h.fail(c.kind, c.status))
		resp, seen := h.chat("g", c.caller)
		if !slices.Equal(seen, c.asked) {
			t.Errorf("%s: asked %v, want %v", c.name, seen, c.asked)
		}
		if c.from == "" {
			if e := bus.ReplyError(resp); e == nil || e.Kind != c.kind {
				t.Errorf("%s: %v, want the group's own error %s", c.name, e, c.kind.Code)
			}
			continue
		}
		if string(resp.Data) != `{"from":"`+c.from+`"}` || resp.Header.Get(bus.HeaderLLMModel) != c.answers {
			t.Errorf("%s: %s from group %q", c.name, resp.Data, resp.Header.Get(bus.HeaderLLMModel))
		}
	}
	// A group without fallbacks of its own: default_fallbacks.
	h.set("c", h.fail(bus.ErrProvider, 500))
	if resp, seen := h.chat("h", all); string(resp.Data) != `{"from":"f"}` || !slices.Equal(seen, []string{"c", "f"}) {
		t.Fatalf("default_fallbacks: %s asked %v", resp.Data, seen)
	}
}
