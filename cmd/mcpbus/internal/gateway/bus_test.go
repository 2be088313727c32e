package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/natsnode"
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

// The embedded server listens on loopback so CLIs and dashboards can join,
// as users the config names (general_settings.mcp_bus_users): a dashboard
// user discovers every service with micro's $SRV.PING. A client without
// credentials is refused (security_bus_test.go has the rest).
func TestEmbeddedNATSReachableOnLoopback(t *testing.T) {
	url, _ := upstream(t, "demo")
	cfg, err := config.Parse("config.yaml", []byte(fmt.Sprintf(`general_settings:
  master_key: %s
  mcp_bus_users: [{user: dashboard, password: os.environ/DASH_PW, roles: [usage]}]
mcp_servers: {demo: {url: %q}}
`, master, url)), func(string) (string, bool) { return "dashboard-password-0123456789", true })
	if err != nil {
		t.Fatal(err)
	}
	g, err := Start(context.Background(), Options{Config: cfg, Listen: "127.0.0.1:0", DataDir: t.TempDir(), NATSListen: "127.0.0.1:0",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close(context.Background())
	if !strings.HasPrefix(g.NATSURL(), "nats://127.0.0.1:") {
		t.Fatalf("embedded NATS URL = %q, want loopback", g.NATSURL())
	}
	if nc, err := nats.Connect(g.NATSURL()); err == nil {
		nc.Close()
		t.Fatal("a client without credentials joined the bus")
	}
	nc, err := natsnode.Connect(g.NATSURL(), natsnode.ConnectOptions{Name: "dashboard", User: "dashboard", Password: "dashboard-password-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	inbox := nc.NewInbox()
	sub, _ := nc.SubscribeSync(inbox)
	nc.PublishRequest("$SRV.PING", inbox, nil)
	seen := map[string]bool{}
	for !seen[bus.ServiceAuth] || !seen[bus.ServiceRegistry] || !seen[bus.ServiceRouter] || !seen[bus.ServiceWorker] {
		m, err := sub.NextMsg(30 * time.Second) // only a service that never answers gets here
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
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q, disallowed_tools: [slow, ask]}}\n", master, url), nil)
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

// A startup failure after NATS is up returns an error and stops what started.
func TestStartFailureCleansUp(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg, _ := config.Parse("config.yaml", []byte("general_settings: {master_key: k}\nmcp_servers: {}\n"), nil)
	g, err := Start(context.Background(), Options{Config: cfg, Listen: busy.Addr().String(), DataDir: t.TempDir(), NATSListen: "off",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || g != nil || !strings.Contains(err.Error(), "listen on") {
		t.Fatalf("Start on a busy port = %v, %v; want an error naming the listen address", g, err)
	}
}

// Messages are bounded by the bus: a body over the limit gets 413, an upstream
// answer over it a JSON-RPC error that says so, never a timeout.
func TestMessageSizeLimits(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "big", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "big", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", 9<<20)}}}, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {big: {url: %q}}\n", master, up.URL), nil)
	url := g.URL() + "/mcp/big"
	h := initSession(t, url, bearer(master))
	huge := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"big","arguments":{"pad":"` + strings.Repeat("y", 5<<20) + `"}}}`
	if r := post(t, url, h, huge); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("5 MiB request: HTTP %d %.200s, want 413", r.status, r.body)
	}
	r := post(t, url, h, `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"big","arguments":{}}}`)
	// The point is a clear error rather than the 60 s timeout, whose error
	// would say the upstream did not answer in time.
	if r.status != http.StatusOK || !strings.Contains(r.rpcErr.Message, "over the bus message limit") {
		t.Errorf("9 MiB result: HTTP %d: %.300s", r.status, r.body)
	}
}

// A session id opened on one server's endpoint is no key to another's.
func TestSessionBoundToItsServer(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}, b: {url: %q}}\n", master, a, b), nil)
	h := initSession(t, g.URL()+"/mcp/a", bearer(master))
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`
	if r := post(t, g.URL()+"/mcp/a", h, list); r.status != http.StatusOK {
		t.Fatalf("own server: HTTP %d %s", r.status, r.body)
	}
	if r := post(t, g.URL()+"/mcp/b", h, list); r.status != http.StatusNotFound {
		t.Errorf("session of /mcp/a used on /mcp/b: HTTP %d %s, want 404", r.status, r.body)
	}
	hb := h.Clone()
	hb.Set("X-Litellm-Mcp-Server", "b")
	if r := post(t, g.URL()+"/mcp", hb, list); r.status != http.StatusNotFound {
		t.Errorf("session of /mcp/a used on /mcp with server b: HTTP %d %s, want 404", r.status, r.body)
	}
}
