package bus_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// The tool search flag travels in the envelope, and a tools request in the
// mode goes to the router, never straight to a worker; other methods of the
// same caller still may.
func TestToolSearchEnvelopeAndDirect(t *testing.T) {
	cache := bustest.ServerCache(t, bustest.Server(t), bus.ServerSpec{Name: "gh", URL: "http://127.0.0.1:1/mcp"})
	env := bus.Envelope{IPClass: bus.Internal, Caller: bus.Identity{Permissions: bus.Permissions{AllServers: true}}, Servers: []string{"gh"}, ToolSearch: true}
	got, err := bus.ReadEnvelope(env.Header())
	if err != nil || !got.ToolSearch {
		t.Fatalf("envelope round trip: ToolSearch %v, %v", got.ToolSearch, err)
	}
	if off, _ := bus.ReadEnvelope((&bus.Envelope{}).Header()); off.ToolSearch {
		t.Fatal("an envelope without the flag reads as tool search")
	}
	for method, direct := range map[string]bool{"tools/call": false, "tools/list": false, "prompts/get": true} {
		if _, ok := bus.Direct(cache, env, &bus.Message{ID: json.RawMessage(`1`), Method: method}); ok != direct {
			t.Errorf("Direct %s in tool search mode = %v, want %v", method, ok, direct)
		}
	}
	env.ToolSearch = false
	if _, ok := bus.Direct(cache, env, &bus.Message{ID: json.RawMessage(`1`), Method: "tools/call"}); !ok {
		t.Error("a tools/call without tool search does not go direct")
	}
}

func TestToolSearchRequested(t *testing.T) {
	for _, c := range []struct {
		values  []string
		on, set bool
		err     string
	}{
		{nil, false, false, ""},
		{[]string{"on"}, true, true, ""},
		{[]string{" OFF "}, false, true, ""},
		{[]string{"true"}, false, false, `header X-Mcpbus-Tool-Search: "true" is not "on" or "off"`},
		{[]string{"on", "off"}, false, false, "given 2 times"},
	} {
		h := http.Header{}
		for _, v := range c.values {
			h.Add(bus.ClientToolSearch, v)
		}
		on, set, e := bus.ToolSearchRequested(h)
		if on != c.on || set != c.set || (e == nil) != (c.err == "") || e != nil && (e.Kind != bus.ErrBadRequest || !strings.Contains(e.Message, c.err)) {
			t.Errorf("%q: on %v set %v err %v", c.values, on, set, e)
		}
	}
	if _, _, e := bus.MetaBool(map[string]any{"mcp_tool_search": "yes"}, bus.MetaToolSearch); e == nil || e.Message != "metadata.mcp_tool_search: must be true or false" {
		t.Fatalf("MetaBool of a string: %v", e)
	}
	if v, set, e := bus.MetaBool(map[string]any{"mcp_tool_search": true}, bus.MetaToolSearch); !v || !set || e != nil {
		t.Fatalf("MetaBool true: %v %v %v", v, set, e)
	}
}
