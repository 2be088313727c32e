package toolworkers

import (
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// The worker applies the routing rule itself, since the ingress sends
// single-server requests straight to it: a caller that may not see the server
// (an external one, for an internal-only server) or whose key may not use it is
// refused with the router's error, and its request never reaches the upstream.
func TestWorkerRefusesCallersTheRouterWould(t *testing.T) {
	up := newRelayUpstream(t)
	e := newRelayEnv(t, up)

	external := caller("", "k-ext", "")
	external.IPClass = bus.External
	otherServer := caller("", "k-other", "")
	otherServer.Caller.Alias = "ci-bot"
	otherServer.Caller.Permissions = bus.Permissions{Servers: []string{"elsewhere"}}
	for _, c := range []struct {
		name string
		env  bus.Envelope
		kind bus.Kind
		msg  string
	}{
		{"external caller, internal-only server", external, bus.ErrUnknownServer, `unknown MCP server "` + relayServer + `"`},
		{"key without the server", otherServer, bus.ErrNotPermitted, "key 'ci-bot' may not use MCP server '" + relayServer + "'"},
	} {
		a := e.request(t, c.env, "tools/call", `{"name":"echo","arguments":{"text":"x"}}`, 1)
		if a.gwErr == nil || a.gwErr.Kind != c.kind || !strings.Contains(a.gwErr.Message, c.msg) {
			t.Errorf("%s: answer %s, error %v; want %s %q", c.name, a.raw, a.gwErr, c.kind.Code, c.msg)
		}
	}
	if n := up.count("tools/call"); n != 0 {
		t.Fatalf("refused calls reached the upstream %d times", n)
	}

	// The same call from an internal caller whose key may use the server.
	if got := e.toolText(t, caller("", "k-ok", ""), "echo"); got == "" {
		t.Fatal("an allowed caller got no answer")
	}
	if n := up.count("tools/call"); n != 1 {
		t.Fatalf("the allowed call reached the upstream %d times", n)
	}
}

// A server marked available_on_public_internet takes external callers.
func TestWorkerAdmitsExternalCallersOfPublicServers(t *testing.T) {
	up := newRelayUpstream(t)
	ns := bustest.Server(t)
	w, err := Start(bustest.Conn(t, ns), bus.ServerSpec{Name: "pub", URL: up.url, Public: true}, Options{Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	w.nc.Flush()
	env := caller("", "k-ext", "")
	env.IPClass = bus.External
	m, err := bustest.Conn(t, ns).RequestMsg(&nats.Msg{Subject: bus.ToolRPC("pub"), Header: env.Header(),
		Data: []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"outside"}}}`)}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if e := bus.ReplyError(m); e != nil || !strings.Contains(string(m.Data), "outside") {
		t.Fatalf("external caller of a public server: %s %v", m.Data, e)
	}
}
