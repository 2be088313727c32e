package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// A request for one server goes from the ingress straight to that server's
// workers (ingress/target.go): the router counts the session's initialize but
// none of its calls, and the answers are those the router path gives.
// Aggregated calls, and every call with RouterOnly, still go through it.
func TestDirectCallsSkipTheRouter(t *testing.T) {
	alpha, _ := upstream(t, "alpha")
	beta, _ := upstream(t, "beta")
	yaml := fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  alpha: {url: %q}\n  beta: {url: %q}\n", master, alpha, beta)
	answers := map[bool]string{}
	for _, routerOnly := range []bool{false, true} {
		g := startGatewayOpts(t, yaml, nil, func(o *Options) { o.RouterOnly = routerOnly })
		nc := testConn(t, g.Gateway)

		h := initSession(t, g.URL()+"/mcp/alpha", bearer(master))
		before := routerRequests(t, nc)
		const calls = 5
		for i := range calls {
			r := post(t, g.URL()+"/mcp/alpha", h, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"direct"}}}`, i))
			if r.status != http.StatusOK || r.rpcErr.Code != 0 {
				t.Fatalf("router only %v: call %d: HTTP %d %s", routerOnly, i, r.status, r.body)
			}
			answers[routerOnly] = string(r.result)
		}
		want := 0
		if routerOnly {
			want = calls
		}
		// At least: a request the router took too late under load is sent
		// again (liveness), and its stats count both.
		if got := routerRequests(t, nc) - before; got < want || want == 0 && got != 0 {
			t.Errorf("router only %v: the router handled %d of %d calls for one server, want %d", routerOnly, got, calls, want)
		}

		// Both servers at once: the router must aggregate, so it sees every call.
		ha := initSession(t, g.URL()+"/mcp", bearer(master))
		before = routerRequests(t, nc)
		r := post(t, g.URL()+"/mcp", ha, `{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"beta__echo","arguments":{"text":"aggregated"}}}`)
		if r.status != http.StatusOK || r.rpcErr.Code != 0 {
			t.Fatalf("router only %v: aggregated call: HTTP %d %s", routerOnly, r.status, r.body)
		}
		if got := routerRequests(t, nc) - before; got < 1 {
			t.Errorf("router only %v: the router handled %d aggregated calls, want 1 (more if one was sent again)", routerOnly, got)
		}
	}
	if answers[false] != answers[true] {
		t.Errorf("direct answer %s, through the router %s", answers[false], answers[true])
	}
}

// routerRequests is how many requests the router's endpoint has handled
// (NATS micro's stats).
func routerRequests(t *testing.T, nc *nats.Conn) int {
	t.Helper()
	subject, err := micro.ControlSubject(micro.StatsVerb, bus.ServiceRouter, "")
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(subject, nil, 2*time.Second)
	if err != nil {
		t.Fatalf("router stats: %v", err)
	}
	var st micro.Stats
	if err := json.Unmarshal(msg.Data, &st); err != nil || len(st.Endpoints) != 1 {
		t.Fatalf("router stats %s: %v", msg.Data, err)
	}
	return st.Endpoints[0].NumRequests
}

// A direct send nobody answers (here no worker runs at all; in life, a server
// whose record changed before the ingress's cache did) goes to the router
// after all, so the caller gets the router's answer, the same as with
// RouterOnly.
func TestRefusedDirectSendGetsTheRoutersAnswer(t *testing.T) {
	alpha, _ := upstream(t, "alpha")
	yaml := fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  alpha: {url: %q}\n", master, alpha)
	noWorkers := []string{"nats", "auth", "registry", "router", "ingress"}
	answers := map[bool]rawResponse{}
	for _, routerOnly := range []bool{false, true} {
		g := startGatewayOpts(t, yaml, nil, func(o *Options) { o.RouterOnly, o.Services = routerOnly, noWorkers })
		nc := testConn(t, g.Gateway)
		// With no worker to ask, initialize still opens the session (the
		// router answers with the gateway's own capabilities).
		h := initSession(t, g.URL()+"/mcp/alpha", bearer(master))
		before := routerRequests(t, nc)
		r := post(t, g.URL()+"/mcp/alpha", h, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`)
		if r.rpcErr.Data["mcpbus_code"] != "MCPBUS_UPSTREAM_UNAVAILABLE" || r.rpcErr.Message != `no tool worker is running for server "alpha"` {
			t.Errorf("router only %v: HTTP %d %s", routerOnly, r.status, r.body)
		}
		// micro counts a request when its handler returns, which can be
		// after the router's pool answered it: wait for the count, then
		// check it is exactly one.
		got := 0
		bustest.Eventually(t, 10*time.Second, "the router counts the request", func() error {
			got = routerRequests(t, nc) - before
			return bustest.AtLeast("requests the router handled", got, 1)
		})
		if got != 1 {
			t.Errorf("router only %v: the router handled %d requests, want 1 (the refused direct send, again)", routerOnly, got)
		}
		answers[routerOnly] = r
	}
	if a, b := answers[false], answers[true]; a.status != b.status || a.rpcErr.Code != b.rpcErr.Code || a.rpcErr.Message != b.rpcErr.Message {
		t.Errorf("direct: HTTP %d %s; via the router: HTTP %d %s", a.status, a.body, b.status, b.body)
	}
}
