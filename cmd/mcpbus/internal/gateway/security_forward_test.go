package gateway

// Security suite, found by the attack review: a per-request credential for
// one server (x-mcp-{server}-{header}, or a header another server lists in
// extra_headers) travelled in the envelope of every request, so other
// servers' workers, which may run elsewhere with less trust, received it. Now
// the ingress's direct route and each router leg carry only the target
// server's forwarded headers (bus.ForwardFor).

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

func TestSecurityPerRequestCredentialsReachOnlyTheirServer(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a: {url: %q, extra_headers: [X-Team-Token]}
  b: {url: %q}
  b-two: {url: %q}
`, master, a, b, b), nil)
	// What each server's workers receive with a tools/call, as a tap on the
	// bus sees it.
	var mu sync.Mutex
	forwarded := map[string][][]string{}
	tap := testConn(t, g.Gateway)
	for _, s := range []string{"a", "b", "b-two"} {
		if _, err := tap.Subscribe(bus.ToolRPC(s), func(m *nats.Msg) {
			if !strings.Contains(string(m.Data), `"tools/call"`) {
				return
			}
			var fwd []string
			for k := range m.Header {
				if name, ok := strings.CutPrefix(k, bus.HeaderForwardPrefix); ok {
					fwd = append(fwd, name)
				}
			}
			slices.Sort(fwd)
			mu.Lock()
			forwarded[s] = append(forwarded[s], fwd)
			mu.Unlock()
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := tap.Flush(); err != nil {
		t.Fatal(err)
	}
	h := bearer(master)
	h.Set("X-Mcp-A-Authorization", "Bearer token-for-a-only")
	h.Set("X-Mcp-B-Two-Authorization", "Bearer token-for-b-two-only")
	h.Set("X-Team-Token", "team-token-for-a-only")
	registerSecret("token-for-a-only", "token-for-b-two-only", "team-token-for-a-only")
	calls := []struct{ path, tool string }{
		{"/mcp/b", "echo"},      // the direct route
		{"/mcp", "b__echo"},     // through the router
		{"/mcp", "b-two__echo"}, // b-two: not b's, though b is its prefix
		{"/mcp/a", "echo"},      // a: its own headers arrive
		{"/mcp", "a__echo"},     // and through the router too
		{"/mcp/b-two", "echo"},  // b-two's own
	}
	for _, c := range calls {
		s := initSession(t, g.URL()+c.path, h)
		if r := post(t, g.URL()+c.path, s, rpc("tools/call", 2, `{"name":"`+c.tool+`","arguments":{"text":"x"}}`)); r.rpcErr.Code != 0 {
			t.Fatalf("%s %s: %s", c.path, c.tool, r.body)
		}
	}
	bustest.Eventually(t, 10*time.Second, "every call reached the tap", func() error {
		mu.Lock()
		defer mu.Unlock()
		return bustest.AtLeast("calls at the tap", len(forwarded["a"])+len(forwarded["b"])+len(forwarded["b-two"]), len(calls))
	})
	mu.Lock()
	defer mu.Unlock()
	want := map[string]string{
		"a":     "[X-Mcp-A-Authorization X-Team-Token]",
		"b":     "[]",
		"b-two": "[X-Mcp-B-Two-Authorization]",
	}
	for s, got := range forwarded {
		for _, fwd := range got {
			if fmt.Sprint(fwd) != want[s] {
				t.Errorf("server %s's workers got forwarded headers %v, want %s", s, fwd, want[s])
			}
		}
	}
}
