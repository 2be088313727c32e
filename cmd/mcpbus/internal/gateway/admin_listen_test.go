package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// A process that runs services without the ingress serves its metrics and
// health on --admin-listen: its bus connections by name, ready while they
// and JetStream are up.
func TestAdminListenerOfASplitProcess(t *testing.T) {
	g := startGatewayOpts(t, "general_settings: {master_key: "+master+"}\nmcp_servers: {}\n", nil, func(o *Options) {
		o.Services = []string{"nats", "auth", "registry"}
		o.AdminListen = "127.0.0.1:0"
	})
	if g.URL() != "" || g.AdminURL() == "" {
		t.Fatalf("url %q admin %q", g.URL(), g.AdminURL())
	}
	for path, want := range map[string]string{
		"/metrics":          `mcpbus_nats_connected{connection="mcpbus-auth"} 1`,
		"/health/readiness": `"status":"healthy"`,
	} {
		resp, err := http.Get(g.AdminURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: HTTP %d %.300s", path, resp.StatusCode, body)
		}
	}
}

// A call still running when the drain time runs out gets a JSON-RPC error
// (not a cut connection), and Close says the drain was not clean; a drain
// with nothing running is.
func TestDrainTimeoutEndsCallsWithAnError(t *testing.T) {
	url, rc := upstream(t, "slowpoke")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  slowpoke: {url: %q}\n", master, url), nil)
	mcp := g.URL() + "/mcp/slowpoke"
	s := initSession(t, mcp, bearer(master))
	done := make(chan rawResponse, 1)
	go func() { done <- post(t, mcp, s, rpc("tools/call", 2, `{"name":"slow","arguments":{"seconds":5}}`)) }()
	bustest.Eventually(t, 30*time.Second, "the upstream runs the call", func() error { return bustest.AtLeast("calls upstream", rc.callCount(), 1) })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	err := g.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "drain time ran out: 1 call(s)") {
		t.Fatalf("Close: %v", err)
	}
	r := <-done
	if r.rpcErr.Code != bus.ErrServiceUnavailable.RPC || !strings.Contains(r.rpcErr.Message, "the gateway stopped before this call finished") {
		t.Fatalf("the cut call: HTTP %d %s", r.status, r.body)
	}

	idle := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {}\n", master), nil)
	if err := idle.Close(context.Background()); err != nil {
		t.Fatalf("a clean drain: %v", err)
	}
}
