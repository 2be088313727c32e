package llmrouter

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// pick puts a lower order first, keeps every deployment once, and never
// draws a deployment of weight 0 before one with a weight.
func TestPickOrderAndWeight(t *testing.T) {
	ds := []config.Model{{ID: "late", Order: 2}, {ID: "unset"}, {ID: "first", Order: 1}, {ID: "also-first", Order: 1}}
	for range 50 {
		got := ids(pick(ds))
		if len(got) != 4 || !slices.Contains(got[:2], "first") || !slices.Contains(got[:2], "also-first") || got[2] != "late" || got[3] != "unset" {
			t.Fatalf("pick: %v", got)
		}
	}
	weighted := []config.Model{{ID: "zero"}, {ID: "heavy", Weight: 5}, {ID: "light", Weight: 1}}
	for range 50 {
		if got := ids(pick(weighted)); got[2] != "zero" {
			t.Fatalf("weight 0 drawn before a weighted deployment: %v", got)
		}
	}
}

func ids(ds []config.Model) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	return out
}

// A deployment that fails is passed over for the group's next one; a
// failure another deployment cannot fix (the request was refused), or one
// after chunks went out, is the answer; a model the key may not use never
// reaches a worker.
func TestRouteTriesTheNextDeployment(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	models := []config.Model{
		{Name: "g", ID: "a", Provider: "openai", Upstream: "x", Order: 1},
		{Name: "g", ID: "b", Provider: "openai", Upstream: "x", Order: 2},
	}
	svc, err := Start(nc, models, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = svc.Stop() }()
	admitAll(t, nc)

	var mu sync.Mutex
	var asked []string
	behave := map[string]func(m *nats.Msg){}
	for _, id := range []string{"a", "b"} {
		_, err := nc.Subscribe(bus.LLMDeploymentRPC(id), func(m *nats.Msg) {
			mu.Lock()
			asked = append(asked, id+":"+m.Header.Get(bus.HeaderLLMModel))
			f := behave[id]
			mu.Unlock()
			f(m)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	fail := func(k bus.Kind, streamed bool) func(m *nats.Msg) {
		return func(m *nats.Msg) {
			h := nats.Header{}
			if streamed {
				h.Set(bus.HeaderLLMStreamed, "true")
			}
			_ = bus.ReplyTo(nc, m.Reply).ErrorWith(bus.Errorf(k, "deployment failed"), h)
		}
	}
	ok := func(m *nats.Msg) {
		_ = m.RespondMsg(&nats.Msg{Data: []byte(`{"ok":true}`), Header: nats.Header{bus.HeaderLLMDeployment: {"b"}}})
	}
	chat := func(caller bus.Identity) (*nats.Msg, []string) {
		mu.Lock()
		asked = nil
		mu.Unlock()
		env := bus.Envelope{RequestID: "r1", Caller: caller, IPClass: bus.Internal}
		resp, err := nc.RequestMsg(&nats.Msg{Subject: bus.SubjectLLMChat, Data: []byte(`{"model":"g","messages":[]}`), Header: env.Header()}, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return resp, slices.Clone(asked)
	}
	master := bus.Identity{KeyID: "master", Permissions: bus.AllowAll()}

	behave["a"], behave["b"] = fail(bus.ErrProvider, false), ok
	resp, seen := chat(master)
	if bus.ReplyError(resp) != nil || string(resp.Data) != `{"ok":true}` || !slices.Equal(seen, []string{"a:g", "b:g"}) {
		t.Fatalf("failover: %s %v asked %v", resp.Data, bus.ReplyError(resp), seen)
	}

	behave["a"] = fail(bus.ErrProviderRejected, false)
	resp, seen = chat(master)
	if e := bus.ReplyError(resp); e == nil || e.Kind != bus.ErrProviderRejected || !slices.Equal(seen, []string{"a:g"}) {
		t.Fatalf("a refused request was tried again: %v asked %v", e, seen)
	}

	behave["a"] = fail(bus.ErrProvider, true)
	resp, seen = chat(master)
	if e := bus.ReplyError(resp); e == nil || len(seen) != 1 {
		t.Fatalf("a request that streamed was tried again: %v asked %v", e, seen)
	}

	limited := bus.Identity{KeyID: "k", Permissions: bus.Permissions{AllServers: true, Models: [][]string{{"other"}}}}
	resp, seen = chat(limited)
	e := bus.ReplyError(resp)
	if e == nil || e.Kind != bus.ErrModelNotAllowed || !strings.Contains(e.Message, "models=[other]") || len(seen) != 0 {
		t.Fatalf("a model the key may not use: %v asked %v", e, seen)
	}

	// The model list is the caller's.
	env := bus.Envelope{RequestID: "r2", Caller: limited, IPClass: bus.Internal}
	list, err := nc.RequestMsg(&nats.Msg{Subject: bus.SubjectLLMModels, Header: env.Header()}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Data []struct{ ID string } `json:"data"`
	}
	if json.Unmarshal(list.Data, &out) != nil || len(out.Data) != 0 {
		t.Fatalf("models of a key without g: %s", list.Data)
	}
}
