package ingress

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

// One key must not be able to fill the shared session store (found by the
// attack review: 290 sessions with 3.5 MB subscribed URIs took 2 GB and
// refused every new session, the master key's included): a virtual key holds
// at most bus.MaxSessionsPerKey sessions, a session at most
// bus.MaxSubscriptions subscriptions of URIs of at most bus.MaxURILen bytes.
func TestSessionsAreBoundedPerKey(t *testing.T) {
	h := newHarness(t, Options{}, func(h *harness, rq routed) { rq.respond(`{}`) })
	for i := 0; i < bus.MaxSessionsPerKey; i++ {
		initialize(t, h.url+"/mcp/github", userKey)
	}
	resp, body := rpcPost(t, h.url+"/mcp/github", userKey, testInit)
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "key 'alice' holds 500 open sessions") {
		t.Fatalf("initialize past the cap: HTTP %d %s", resp.StatusCode, body)
	}
	master := http.Header{"Authorization": {"Bearer " + testMasterKey}}
	initialize(t, h.url+"/mcp/github", master) // the master key is not capped
	s := initialize(t, h.url+"/mcp/github", master)

	subscribe := func(uri string) (*http.Response, string) {
		return rpcPost(t, h.url+"/mcp/github", s, fmt.Sprintf(`{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":%q}}`, uri))
	}
	if resp, body := subscribe("file:///" + strings.Repeat("a", bus.MaxURILen)); !strings.Contains(body, "params.uri is longer than 2048 bytes") {
		t.Fatalf("a long URI: HTTP %d %s", resp.StatusCode, body)
	}
	for i := 0; i < bus.MaxSubscriptions; i++ {
		if resp, body := subscribe(fmt.Sprintf("file:///%d", i)); resp.StatusCode != http.StatusOK || strings.Contains(body, "error") {
			t.Fatalf("subscription %d: HTTP %d %s", i, resp.StatusCode, body)
		}
	}
	if _, body := subscribe("file:///one-more"); !strings.Contains(body, "this session has 64 subscriptions") {
		t.Fatalf("a 65th subscription: %s", body)
	}
	if _, body := subscribe("file:///7"); strings.Contains(body, "error") {
		t.Fatalf("subscribing again to a subscribed URI: %s", body)
	}
}
