package toolworkers

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// What a listed definition does to a pin: a first sight pins it, a new
// definition goes pending, the same pending one writes nothing again, and a
// pending pin withholds the tool whatever definition a replica lists.
func TestNextPin(t *testing.T) {
	def := json.RawMessage(`{"name":"t"}`)
	p, ev, _ := nextPin(nil, "s", "t", def, "h1")
	if p == nil || ev != bus.PinEventPinned || p.Status != bus.PinPinned || p.Hash != "h1" || !approved(p, "h1") {
		t.Fatalf("first sight: %+v %s", p, ev)
	}
	if n, _, _ := nextPin(p, "s", "t", def, "h1"); n != nil {
		t.Fatalf("the pinned definition wrote %+v", n)
	}
	pending, ev, prev := nextPin(p, "s", "t", json.RawMessage(`{"name":"t","description":"x"}`), "h2")
	if pending == nil || ev != bus.PinEventPending || prev != "h1" || pending.Hash != "h1" || pending.PendingHash != "h2" || approved(pending, "h2") {
		t.Fatalf("a change: %+v %s %s", pending, ev, prev)
	}
	if n, _, _ := nextPin(pending, "s", "t", def, "h2"); n != nil {
		t.Fatalf("the pending definition again wrote %+v", n)
	}
	if approved(pending, "h1") {
		t.Fatal("a replica listing the old definition shows a tool whose pin is pending")
	}
	if n, _, _ := nextPin(pending, "s", "t", def, "h1"); n != nil {
		t.Fatalf("a replica listing the old definition undid the pending state: %+v", n)
	}
	again, ev, _ := nextPin(pending, "s", "t", def, "h3")
	if again == nil || ev != bus.PinEventPending || again.PendingHash != "h3" || again.Hash != "h1" {
		t.Fatalf("a second change: %+v", again)
	}
}

func TestFlagToolKeepsTheToolAndMarksIt(t *testing.T) {
	out := flagTool(json.RawMessage(`{"name":"t","description":"Adds.","_meta":{"x":"y"},"inputSchema":{"type":"object"}}`))
	var m struct {
		Name, Description string
		Meta              map[string]string `json:"_meta"`
		InputSchema       json.RawMessage
	}
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatal(err)
	}
	if m.Name != "t" || !strings.HasPrefix(m.Description, "[mcpbus:") || !strings.HasSuffix(m.Description, "Adds.") ||
		m.Meta["x"] != "y" || m.Meta[pinMeta] != "changed, not approved" || string(m.InputSchema) != `{"type":"object"}` {
		t.Fatalf("flagged: %s", out)
	}
}
