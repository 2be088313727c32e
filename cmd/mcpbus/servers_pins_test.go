package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// `mcpbus servers pins|approve|reject` against a real gateway: a listed
// server's tools are pinned and shown, one pin in detail with its history,
// and approving a tool with no change waiting says so.
func TestServersPinsCommandAgainstAGateway(t *testing.T) {
	up := httptest.NewServer(demo.Handler("pinned"))
	t.Cleanup(up.Close)
	url := serveForCLI(t, fmt.Sprintf("general_settings: {master_key: sk-cli-pins}\nmcp_servers:\n  demo: {url: %s/mcp, tool_pinning: withhold}\n", up.URL))
	t.Setenv("MCPBUS_MASTER_KEY", "sk-cli-pins")
	t.Setenv("MCPBUS_URL", url)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "pins-cli-test", Version: "0"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: url + "/mcp/demo",
		HTTPClient: &http.Client{Transport: bearerTransport("sk-cli-pins")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if _, err := cs.ListTools(ctx, nil); err != nil { // the first sight pins
		t.Fatal(err)
	}

	code, out, errOut := cli("servers", "pins", "demo")
	if code != 0 || !strings.Contains(out, "tool_pinning withhold") || !strings.Contains(out, "echo") || !strings.Contains(out, "pinned") {
		t.Fatalf("servers pins demo: exit %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli("servers", "pins", "demo", "echo")
	if code != 0 || !strings.Contains(out, "echo on demo: pinned") || !strings.Contains(out, "history:") {
		t.Fatalf("servers pins demo echo: exit %d %q %q", code, out, errOut)
	}
	code, out, errOut = cli("servers", "approve", "demo", "echo")
	if code == 0 || !strings.Contains(out+errOut, "no change waiting for approval") {
		t.Fatalf("servers approve of an unchanged tool: exit %d %q %q", code, out, errOut)
	}
	code, _, errOut = cli("servers", "approve", "demo")
	if code == 0 || !strings.Contains(errOut, "usage: mcpbus servers approve NAME TOOL") {
		t.Fatalf("servers approve without a tool: exit %d %q", code, errOut)
	}
}

type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
