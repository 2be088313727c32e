package router

import (
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// A drained server is refused by name at once, even while a worker of it
// still listens (its record changed first): a call to it, or to one of its
// tools through /mcp, gets MCPBUS_SERVER_DRAINED and nothing reaches the
// worker; an aggregated list leaves it out and names it in _meta, drained.
func TestDrainedServerIsRefusedByName(t *testing.T) {
	up := &fakeWorker{name: "up", tools: []string{"t"}}
	down := &fakeWorker{name: "down", tools: []string{"t"}}
	specs := servers("down", "up")
	specs[0].Drain = true
	h := startHarness(t, Options{}, specs, up, down)

	env := internal()
	env.Servers = []string{"down"}
	_, e := h.send(env, request(1, "tools/call", `{"name":"t"}`))
	if e == nil || e.Kind != bus.ErrServerDrained || !strings.Contains(e.Message, `MCP server "down" is drained`) {
		t.Fatalf("call to a drained server: %v", e)
	}

	var l listed
	h.result(internal(), request(2, "tools/list", ""), &l)
	if len(l.Tools) != 1 || l.Tools[0].Name != "up__t" {
		t.Fatalf("aggregated tools: %+v, want the undrained server's only", l.Tools)
	}
	parts := l.Meta[bus.MetaPartial]
	if len(parts) != 1 || parts[0].Server != "down" || parts[0].Code != bus.ErrServerDrained.Code {
		t.Fatalf("_meta: %+v, want the drained server named", parts)
	}
	_, e = h.send(internal(), request(3, "tools/call", `{"name":"down__t"}`))
	if e == nil || e.Kind != bus.ErrServerDrained {
		t.Fatalf("aggregated call to a drained server's tool: %v", e)
	}
	if n := len(down.seen); n != 0 {
		t.Errorf("the drained server's worker got %d messages", n)
	}
}
