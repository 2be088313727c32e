package ingress

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
)

func TestRouteFamilyOfEveryRoute(t *testing.T) {
	cases := []struct {
		method, path string
		want         bus.RouteFamily // "" = health or no route
	}{
		{"POST", "/mcp", bus.RoutesMCP},
		{"GET", "/mcp/github", bus.RoutesMCP},
		{"POST", "/github/mcp", bus.RoutesMCP},
		{"GET", "/sse", bus.RoutesMCP},
		{"POST", "/messages", bus.RoutesMCP},
		{"POST", "/mcp-rest/tools/call", bus.RoutesMCP},
		{"GET", "/v1/mcp/tools", bus.RoutesMCP},
		{"GET", "/v1/mcp/registry.json", bus.RoutesMCP},
		{"GET", "/v1/mcp/server", bus.RoutesMCP},
		{"GET", "/v1/mcp/server/health", bus.RoutesMCP},
		{"POST", "/v1/mcp/server", bus.RoutesAdmin},
		{"DELETE", "/v1/mcp/server/github", bus.RoutesAdmin},
		{"POST", "/v1/mcp/server/github/drain", bus.RoutesAdmin},
		{"POST", "/key/generate", bus.RoutesAdmin},
		{"GET", "/team/list", bus.RoutesAdmin},
		{"POST", "/organization/new", bus.RoutesAdmin},
		{"GET", "/v1/models", bus.RoutesLLM},
		{"GET", "/models", bus.RoutesLLM},
		{"POST", "/v1/chat/completions", bus.RoutesLLM},
		{"POST", "/chat/completions", bus.RoutesLLM},
		{"POST", "/v1/embeddings", bus.RoutesLLM},
		{"POST", "/responses", bus.RoutesLLM},
		{"POST", "/a2a/helper", bus.RoutesAgents},
		{"POST", "/v1/a2a/helper/message/send", bus.RoutesAgents},
		{"GET", "/a2a/helper/.well-known/agent-card.json", bus.RoutesAgents},
		{"GET", "/.well-known/agent.json", bus.RoutesAgents},
		{"GET", "/v1/agents", bus.RoutesAgents},
		{"GET", "/metrics", bus.RoutesMetrics},
		{"GET", "/ui", bus.RoutesUI},
		{"GET", "/ui/teams", bus.RoutesUI},
		{"GET", "/health/liveliness", ""},
		{"GET", "/health/readiness", ""},
		{"GET", "/keys", ""}, // not /key/...
		{"GET", "/v1/modelsx", ""},
		{"GET", "/nothing", ""},
	}
	for _, c := range cases {
		got, ok := routeFamily(c.method, c.path)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s %s: family %q (%v), want %q", c.method, c.path, got, ok, c.want)
		}
	}
}

// A public edge started with --routes mcp answers the LLM, agent and admin
// routes 404 for every caller, internal or not, with or without the master
// key, and never asks auth; MCP and the health probes are served.
func TestIngressServesOnlyItsRouteFamilies(t *testing.T) {
	nc := testConn(t)
	fakeVerify(t, nc)
	g := metricsIngress(t, Options{NC: nc, Routes: []bus.RouteFamily{bus.RoutesMCP}})
	master := http.Header{"Authorization": {"Bearer " + testMasterKey}}
	for _, remote := range []string{"10.1.2.3:5555", "203.0.113.9:1234"} {
		for _, rt := range []struct{ method, path, family string }{
			{"POST", "/v1/chat/completions", "llm"}, {"GET", "/v1/models", "llm"}, {"POST", "/responses", "llm"},
			{"POST", "/a2a/helper", "agents"}, {"POST", "/key/generate", "admin"}, {"GET", "/metrics", "metrics"},
		} {
			w := serve(g, rt.method, rt.path, remote, master, `{"model":"gpt-4o","messages":[]}`)
			if w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "does not serve the "+rt.family+" routes") ||
				!strings.Contains(w.Body.String(), "--routes mcp") {
				t.Errorf("%s %s from %s: HTTP %d %s; want 404 naming --routes mcp", rt.method, rt.path, remote, w.Code, w.Body)
			}
		}
		// MCP is served: without a key, auth's refusal.
		if w := serve(g, "POST", "/mcp", remote, nil, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); w.Code != http.StatusUnauthorized {
			t.Errorf("/mcp from %s: HTTP %d %s; want auth's 401", remote, w.Code, w.Body)
		}
		if w := serve(g, "GET", "/health/liveliness", remote, nil, ""); w.Code != http.StatusOK {
			t.Errorf("/health/liveliness from %s: HTTP %d", remote, w.Code)
		}
	}
}

// By default external callers reach MCP only: the other families answer
// them 403 naming the family and the setting, before their key is looked
// at; internal callers reach every family, and external_routes opens more.
func TestExternalCallersReachOnlyExternalRoutes(t *testing.T) {
	nc := testConn(t)
	fakeVerify(t, nc)
	const external, internal = "203.0.113.9:1234", "10.1.2.3:5555"
	g := metricsIngress(t, Options{NC: nc})
	master := http.Header{"Authorization": {"Bearer " + testMasterKey}}
	bad := http.Header{"Authorization": {"Bearer sk-wrong"}}
	for _, rt := range []struct{ method, path, family string }{
		{"POST", "/v1/chat/completions", "llm"}, {"GET", "/models", "llm"},
		{"POST", "/a2a/helper", "agents"}, {"GET", "/v1/agents", "agents"},
		{"POST", "/key/generate", "admin"}, {"POST", "/v1/mcp/server", "admin"},
		{"GET", "/ui", "ui"},
	} {
		for _, h := range []http.Header{nil, master, bad} {
			w := serve(g, rt.method, rt.path, external, h, `{}`)
			if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "MCPBUS_ROUTE_NOT_EXPOSED") ||
				!strings.Contains(w.Body.String(), "the "+rt.family+" routes are not open to external callers (general_settings.external_routes: [mcp])") {
				t.Errorf("external %s %s: HTTP %d %s; want 403 MCPBUS_ROUTE_NOT_EXPOSED naming the family", rt.method, rt.path, w.Code, w.Body)
			}
		}
		if w := serve(g, rt.method, rt.path, internal, bad, `{}`); w.Code == http.StatusForbidden && strings.Contains(w.Body.String(), "ROUTE_NOT_EXPOSED") {
			t.Errorf("internal %s %s refused as external: %s", rt.method, rt.path, w.Body)
		}
	}
	// MCP, and reading the servers a key may use, stay open.
	for _, path := range []string{"/mcp", "/v1/mcp/server", "/v1/mcp/tools"} {
		method := http.MethodGet
		if path == "/mcp" {
			method = http.MethodPost
		}
		if w := serve(g, method, path, external, nil, `{"jsonrpc":"2.0","id":1,"method":"ping"}`); w.Code != http.StatusUnauthorized {
			t.Errorf("external %s %s without a key: HTTP %d %s; want auth's 401", method, path, w.Code, w.Body)
		}
	}

	open := metricsIngress(t, Options{NC: nc, ExternalRoutes: []bus.RouteFamily{bus.RoutesMCP, bus.RoutesLLM}})
	if w := serve(open, "POST", "/v1/chat/completions", external, bad, `{}`); w.Code != http.StatusUnauthorized {
		t.Errorf("external_routes [mcp, llm], external /v1/chat/completions with a bad key: HTTP %d %s; want auth's 401", w.Code, w.Body)
	}
	if w := serve(open, "POST", "/key/generate", external, master, `{}`); w.Code != http.StatusForbidden {
		t.Errorf("external_routes [mcp, llm], external /key/generate: HTTP %d; want 403", w.Code)
	}
}

func TestParseRouteFamilies(t *testing.T) {
	got, err := bus.ParseRouteFamilies([]string{"mcp", " LLM ", "mcp"})
	if err != nil || bus.JoinRouteFamilies(got) != "mcp,llm" {
		t.Fatalf("mcp, LLM, mcp: %v %v", got, err)
	}
	if got, err := bus.ParseRouteFamilies([]string{"all"}); err != nil || len(got) != len(bus.RouteFamilies) {
		t.Fatalf("all: %v %v", got, err)
	}
	if got, err := bus.ParseRouteFamilies(nil); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("none: %#v %v; want an empty, non-nil list (no family)", got, err)
	}
	if _, err := bus.ParseRouteFamilies([]string{"mcp", "chat"}); err == nil ||
		!strings.Contains(err.Error(), `[1]: "chat" is not a route family (one of mcp,llm,agents,admin,ui,metrics, or all)`) {
		t.Fatalf("chat: %v", err)
	}
}

// The family check runs before every request: a few string comparisons.
func BenchmarkRouteFamily(b *testing.B) {
	paths := []string{"/mcp", "/mcp/github", "/v1/chat/completions", "/github/mcp", "/key/generate"}
	for i := 0; b.Loop(); i++ {
		routeFamily(http.MethodPost, paths[i%len(paths)])
	}
}
