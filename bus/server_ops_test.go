package bus_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// What a client sends to the operations API is checked before it goes on
// the bus, each refusal naming the field.
func TestOpsRequestsAreValidated(t *testing.T) {
	yes := true
	pct := func(n int) *int { return &n }
	str := func(s string) *string { return &s }
	for _, c := range []struct {
		name string
		err  *bus.Error
		want string // "" for valid
	}{
		{"drain", bus.DrainRequest{Name: "a", Drain: &yes}.Validate(), ""},
		{"drain without drain", bus.DrainRequest{Name: "a"}.Validate(), "drain: required"},
		{"drain bad name", bus.DrainRequest{Name: "a.b", Drain: &yes}.Validate(), "server_id: must name a server"},
		{"canary", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: str("https://b/mcp"), Percent: pct(10)}.Validate(), ""},
		{"ramp", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, Percent: pct(100)}.Validate(), ""},
		{"percent over", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, Percent: pct(101)}.Validate(), "percent: must be a whole number from 0 to 100"},
		{"percent under", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, Percent: pct(-1)}.Validate(), "percent: must be"},
		{"nothing", bus.CanaryRequest{Name: "a", Action: bus.CanarySet}.Validate(), "canary: give url"},
		{"url and command", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: str("https://b"), Command: str("x")}.Validate(), "url: give url"},
		{"empty url", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: str(" ")}.Validate(), "url: must be"},
		{"long url", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: str("https://" + strings.Repeat("a", bus.MaxCanaryURL))}.Validate(), "url: must be"},
		{"many args", bus.CanaryRequest{Name: "a", Action: bus.CanarySet, Command: str("x"), Args: make([]string, bus.MaxCanaryArgs+1)}.Validate(), "args: at most"},
		{"off with url", bus.CanaryRequest{Name: "a", Action: bus.CanaryOff, URL: str("https://b")}.Validate(), "canary off takes no"},
		{"promote", bus.CanaryRequest{Name: "a", Action: bus.CanaryPromote}.Validate(), ""},
		{"bad action", bus.CanaryRequest{Name: "a", Action: "ramp"}.Validate(), "action: must be"},
	} {
		switch {
		case c.want == "" && c.err != nil:
			t.Errorf("%s: refused: %v", c.name, c.err)
		case c.want != "" && (c.err == nil || c.err.Kind != bus.ErrBadRequest || !strings.Contains(c.err.Message, c.want)):
			t.Errorf("%s: got %v, want %q", c.name, c.err, c.want)
		}
	}
}

// A drained server is never a direct route: the router answers it, with the
// drained error, as it does when no worker is left to answer.
func TestDrainedServerIsRefusedByName(t *testing.T) {
	cache := bustest.ServerCache(t, bustest.Server(t), bus.ServerSpec{Name: "d", URL: "http://127.0.0.1:1/mcp", Drain: true})
	env := bus.Envelope{IPClass: bus.Internal, Caller: bus.Identity{Permissions: bus.Permissions{AllServers: true}}, Servers: []string{"d"}}
	if _, ok := bus.Direct(cache, env, &bus.Message{ID: json.RawMessage(`1`), Method: "tools/call"}); ok {
		t.Error("a drained server is a direct route")
	}
	s, _ := cache.Get("d")
	e := bus.DrainedError(s)
	if e == nil || e.Kind != bus.ErrServerDrained || !strings.Contains(e.Message, `"d" is drained`) {
		t.Errorf("drained error: %v", e)
	}
	if e := bus.WorkerError(s, 0, nats.ErrNoResponders); e.Kind != bus.ErrServerDrained {
		t.Errorf("no responders for a drained server: %v", e)
	}
	s.Drain = false
	if bus.DrainedError(s) != nil || bus.WorkerError(s, 0, nats.ErrNoResponders).Kind == bus.ErrServerDrained {
		t.Error("an undrained server reads as drained")
	}
}
