package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/bustest"
	"github.com/mcpbus/mcpbus/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// --nats: every service runs against an external NATS server instead of the
// embedded one, and the gateway works the same.
func TestExternalNATS(t *testing.T) {
	ns := bustest.Server(t)
	url, _ := upstream(t, "demo")
	cfg, err := config.Parse("config.yaml", []byte(fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url)), nil)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), Options{Config: cfg, Listen: "127.0.0.1:0", NATSURL: ns.ClientURL(), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	if g.NATSURL() != "" {
		t.Errorf("with --nats the gateway reports its own NATS URL %q", g.NATSURL())
	}
	cs, err := connect(t, g.URL()+"/mcp/demo", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatal(err)
	}
	// The servers bucket lives on the external server.
	nc := bustest.Conn(t, ns)
	msg, err := nc.Request(bus.SubjectRegistryGet, []byte(`{"name":"demo"}`), time.Second)
	if err != nil || bus.ReplyError(msg) != nil {
		t.Fatalf("registry on the external server: %v %v", err, bus.ReplyError(msg))
	}
}

// The embedded server listens on loopback so CLIs and dashboards can join: a
// plain nats.go client there discovers every service with micro's $SRV.PING.
func TestEmbeddedNATSReachableOnLoopback(t *testing.T) {
	url, _ := upstream(t, "demo")
	cfg, _ := config.Parse("config.yaml", []byte(fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url)), nil)
	g, err := Start(context.Background(), Options{Config: cfg, Listen: "127.0.0.1:0", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	if !strings.HasPrefix(g.NATSURL(), "nats://127.0.0.1:") {
		t.Fatalf("embedded NATS URL = %q, want loopback", g.NATSURL())
	}
	nc, err := nats.Connect(g.NATSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	inbox := nats.NewInbox()
	sub, _ := nc.SubscribeSync(inbox)
	nc.PublishRequest("$SRV.PING", inbox, nil)
	seen := map[string]bool{}
	for {
		m, err := sub.NextMsg(500 * time.Millisecond)
		if err != nil {
			break
		}
		var p micro.Ping
		json.Unmarshal(m.Data, &p)
		seen[p.Name] = true
	}
	for _, name := range []string{bus.ServiceAuth, bus.ServiceRegistry, bus.ServiceRouter, bus.ServiceWorker} {
		if !seen[name] {
			t.Errorf("service %s did not answer $SRV.PING on the loopback listener (saw %v)", name, seen)
		}
	}
}

// allowed_tools/disallowed_tools: a hidden tool is not listed and calling it is
// an explicit error that says why.
func TestToolFilters(t *testing.T) {
	url, rec := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q, disallowed_tools: [slow]}}\n", master, url), nil)
	cs, err := connect(t, g.URL()+"/mcp/demo", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	tools, err := cs.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tl := range tools.Tools {
		if tl.Name == "slow" {
			t.Fatal("a disallowed tool is listed")
		}
	}
	if len(tools.Tools) != 2 {
		t.Fatalf("%d tools listed, want echo and add", len(tools.Tools))
	}
	before := len(rec.seen())
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "slow"})
	if err == nil || !strings.Contains(err.Error(), `tool "slow" is not allowed on server "demo"`) {
		t.Fatalf("calling a disallowed tool: %v", err)
	}
	if after := len(rec.seen()); after != before {
		t.Fatalf("a disallowed call reached the upstream (%d requests)", after-before)
	}
}
