package gateway

// LiteLLM's second topology, from one NATS cluster: a private gateway that
// holds the LLM providers' keys and serves every route, and a public edge
// (`mcpbus ingress --routes mcp`) that serves /mcp only, as a bus user
// limited to the MCP subjects. A compromised edge can neither call the LLM
// router nor the admin API: nats-server refuses its user those subjects.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/fakellm"
	"github.com/mcpbus/mcpbus/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const edgePassword = "edge-test-password-0123456789"

func TestTwoGatewaysPublicEdgeServesMCPOnly(t *testing.T) {
	fake := &fakellm.Server{APIKey: llmProviderKey}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	up, _ := upstream(t, "docs")
	private := startGatewayOpts(t, fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_bus_users:
    - {user: edge, password: os.environ/EDGE_PW, roles: [ingress], routes: [mcp]}
    - {user: inside, password: os.environ/EDGE_PW, roles: [ingress], routes: [admin, llm, ui]}
mcp_servers:
  docs: {url: %q}
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/fake-gpt, api_base: %s/v1, api_key: os.environ/FAKE_KEY}
`, master, up, hs.URL), map[string]string{"EDGE_PW": edgePassword, "FAKE_KEY": llmProviderKey},
		func(o *Options) { o.NATSListen = "127.0.0.1:0" })

	// The edge's config holds no model and no provider key.
	edgeCfg, err := config.Parse("edge.yaml", []byte("general_settings: {}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	startIngress := func(user string, logs *syncBuffer, routes ...bus.RouteFamily) *Gateway {
		env := func(k string) (string, bool) {
			switch k {
			case "MCPBUS_NATS_USER":
				return user, true
			case "MCPBUS_NATS_PASSWORD":
				return edgePassword, true
			}
			return "", false
		}
		g, err := Start(context.Background(), Options{Config: edgeCfg, Listen: "127.0.0.1:0", DataDir: t.TempDir(),
			NATSURL: private.NATSURL(), Log: slog.New(slog.NewTextHandler(logs, nil)), Services: []string{"ingress"}, Env: env,
			Routes: routes})
		if err != nil {
			t.Fatalf("start the %s ingress: %v", user, err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			g.Close(ctx)
		})
		return g
	}
	edgeLogs, insideLogs := &syncBuffer{}, &syncBuffer{}
	edge := startIngress("edge", edgeLogs, bus.RoutesMCP)
	inside := startIngress("inside", insideLogs, bus.RoutesAdmin, bus.RoutesLLM, bus.RoutesUI)

	// MCP through the edge works.
	cs, err := connectPlain(t, edge.URL()+"/mcp", bearer(master))
	if err != nil {
		t.Fatalf("MCP through the edge: %v", err)
	}
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "docs__echo", Arguments: map[string]any{"text": "via the edge"}})
	if err != nil || len(res.Content) == 0 {
		t.Fatalf("tools/call through the edge: %v %+v", err, res)
	}
	if tc, ok := res.Content[0].(*mcp.TextContent); !ok || tc.Text != "via the edge" {
		t.Fatalf("tools/call through the edge answered %+v", res.Content)
	}

	// The edge refuses the LLM and admin routes to everyone, the master
	// key included; the private gateway serves them.
	chat := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	for _, rt := range []struct{ method, path, body, family string }{
		{"POST", "/v1/chat/completions", chat, "llm"},
		{"POST", "/chat/completions", chat, "llm"},
		{"GET", "/v1/models", "", "llm"},
		{"POST", "/key/generate", "{}", "admin"},
	} {
		status, _, body := rest(t, rt.method, edge.URL()+rt.path, master, rt.body)
		if status != http.StatusNotFound || !strings.Contains(body, "does not serve the "+rt.family+" routes") {
			t.Errorf("edge %s %s: HTTP %d %s; want 404 naming the %s routes", rt.method, rt.path, status, body, rt.family)
		}
	}
	if n := fake.Calls("fake-gpt"); n != 0 {
		t.Fatalf("the provider saw %d calls through the edge", n)
	}
	status, _, body := rest(t, http.MethodPost, private.URL()+"/v1/chat/completions", master, chat)
	if status != http.StatusOK || fake.Calls("fake-gpt") != 1 {
		t.Fatalf("private gateway /v1/chat/completions: HTTP %d %s (provider calls %d)", status, body, fake.Calls("fake-gpt"))
	}

	// A second ingress serving admin and LLM only, as a user limited to
	// them, makes keys (it needs nothing of MCP's: no sessions bucket).
	status, _, body = rest(t, http.MethodPost, inside.URL()+"/key/generate", master, `{"key_alias":"made-inside","models":["gpt-4o"]}`)
	if status != http.StatusOK || !strings.Contains(body, `"key":"sk-`) {
		t.Fatalf("/key/generate on the admin,llm ingress: HTTP %d %s", status, body)
	}
	// ... and serves the UI: sign-in sessions in their bucket, usage read
	// from the stream.
	ui := uiSignIn(t, inside.URL(), master)
	if status, body := ui.do(http.MethodGet, "/ui/api/usage?since=1h", ""); status != http.StatusOK || !strings.Contains(body, `"scope":"all"`) {
		t.Fatalf("/ui/api/usage on the admin,llm,ui ingress: HTTP %d %s", status, body)
	}
	if status, body := ui.do(http.MethodGet, "/ui/api/cluster", ""); status != http.StatusOK || !strings.Contains(body, bus.ServiceWorker) {
		t.Fatalf("/ui/api/cluster on the admin,llm,ui ingress: HTTP %d %s", status, body)
	}
	for name, logs := range map[string]*syncBuffer{"edge": edgeLogs, "admin,llm,ui": insideLogs} {
		if strings.Contains(strings.ToLower(logs.String()), "permissions violation") {
			t.Errorf("the %s ingress used a subject its user may not:\n%s", name, logs.String())
		}
	}

	// Whoever holds the edge's bus credentials cannot reach the LLM router,
	// the agents or the admin API: the server refuses the publish.
	nc, v := tcpAs(t, private.NATSURL(), "edge", edgePassword)
	for _, subject := range []string{bus.SubjectLLMChat, bus.SubjectLLMModels, bus.SubjectKeyGenerate, bus.SubjectRegistryCreate, bus.AgentRPC("helper")} {
		if err := nc.Publish(subject, []byte(chat)); err != nil {
			t.Fatal(err)
		}
		_ = nc.Flush()
		v.expect(t, "edge user publishing to "+subject, subject)
	}
	if n := fake.Calls("fake-gpt"); n != 1 {
		t.Fatalf("the provider saw %d calls, want the private gateway's 1", n)
	}
	// ... while its MCP subjects are its own.
	if _, err := nc.Request(bus.SubjectRegistryList, []byte(`{}`), 10*time.Second); err != nil {
		t.Fatalf("edge user, %s: %v", bus.SubjectRegistryList, err)
	}
}

// One gateway for everything: by default external callers reach /mcp only;
// the LLM, agent and admin routes answer them 403 naming the setting, even
// with the master key, while internal callers reach every route.
func TestExternalCallersGetMCPOnlyByDefault(t *testing.T) {
	fake := &fakellm.Server{APIKey: llmProviderKey}
	hs := httptest.NewServer(fake)
	t.Cleanup(hs.Close)
	up, _ := upstream(t, "docs")
	cfg := func(extra string) string {
		return fmt.Sprintf(`
general_settings:
  master_key: %s
  mcp_internal_ip_ranges: [10.0.0.0/8]
%s
mcp_servers:
  docs: {url: %q, available_on_public_internet: true}
model_list:
  - model_name: gpt-4o
    litellm_params: {model: openai/fake-gpt, api_base: %s/v1, api_key: os.environ/FAKE_KEY}
`, master, extra, up, hs.URL)
	}
	env := map[string]string{"FAKE_KEY": llmProviderKey}
	g := startGateway(t, cfg(""), env)
	chat := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	for _, rt := range []struct{ method, path, body, family string }{
		{"POST", "/v1/chat/completions", chat, "llm"},
		{"POST", "/v1/responses", `{"model":"gpt-4o","input":"hi"}`, "llm"},
		{"GET", "/v1/agents", "", "agents"},
		{"POST", "/key/generate", "{}", "admin"},
		{"GET", "/metrics", "", "metrics"},
	} {
		status, _, body := rest(t, rt.method, g.URL()+rt.path, master, rt.body)
		if status != http.StatusForbidden || !strings.Contains(body, "MCPBUS_ROUTE_NOT_EXPOSED") ||
			!strings.Contains(body, "the "+rt.family+" routes are not open to external callers") {
			t.Errorf("external %s %s: HTTP %d %s; want 403 naming the %s routes", rt.method, rt.path, status, body, rt.family)
		}
	}
	if n := fake.Calls("fake-gpt"); n != 0 {
		t.Fatalf("the provider saw %d calls from external callers", n)
	}
	cs, err := connectPlain(t, g.URL()+"/mcp", bearer(master))
	if err != nil {
		t.Fatalf("external MCP: %v", err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "docs__echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatalf("external tools/call: %v", err)
	}

	// external_routes opens the LLM routes, and only them.
	open := startGateway(t, cfg("  external_routes: [mcp, llm]"), env)
	if status, _, body := rest(t, http.MethodPost, open.URL()+"/v1/chat/completions", master, chat); status != http.StatusOK {
		t.Fatalf("external_routes [mcp, llm]: /v1/chat/completions HTTP %d %s", status, body)
	}
	if status, _, _ := rest(t, http.MethodPost, open.URL()+"/key/generate", master, "{}"); status != http.StatusForbidden {
		t.Fatalf("external_routes [mcp, llm]: /key/generate HTTP %d, want 403", status)
	}
}
