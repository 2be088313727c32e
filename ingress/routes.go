package ingress

import (
	"net/http"
	"slices"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// Route families: every path the ingress serves belongs to one, except the
// health probes and the signed calls' JWKS (jwks.go), which are always
// served. An ingress serves the families
// of Options.Routes (`--routes`; all of them by default), and external
// callers reach only those of Options.ExternalRoutes
// (general_settings.external_routes; bus.DefaultExternalRoutes, MCP only, by
// default). Both checks come before authentication, so a refused caller's
// key is never verified and no service behind the ingress is asked.
//
// This is LiteLLM's advice for public MCP, made a setting: keep
// /v1/chat/completions and the admin API off public IPs, or run a second,
// internet-facing gateway that serves /mcp only (docs/DEPLOY.md).

// routeFamily is the family of a request, and false for the health probes
// and paths no route takes (they get the mux's own answers). Reading the
// MCP servers (GET /v1/mcp/server..., which answers only what the caller's
// key may use) is MCP; changing them is admin.
func routeFamily(method, path string) (bus.RouteFamily, bool) {
	if hasPrefixPath(path, "/mcp") { // the hot path first
		return bus.RoutesMCP, true
	}
	switch {
	case hasPrefixPath(path, WellKnownProtectedResource), hasPrefixPath(path, WellKnownAuthorizationServer),
		hasPrefixPath(path, "/oauth"): // how MCP clients sign in
		return bus.RoutesMCP, true
	case path == "/health" || strings.HasPrefix(path, "/health/"), path == JWKSPath: // jwks.go says why
		return "", false
	case path == "/metrics":
		return bus.RoutesMetrics, true
	case hasPrefixPath(path, "/ui"):
		return bus.RoutesUI, true
	case hasPrefixPath(path, "/v1/mcp/server"):
		// A caller's own upstream credentials (user_credentials.go) are
		// the MCP surface's, in every method.
		if toolPinsPath(path) { // tool_pins_api.go
			return bus.RoutesAdmin, true
		}
		if method == http.MethodGet || method == http.MethodHead || userCredentialPath(path) {
			return bus.RoutesMCP, true
		}
		return bus.RoutesAdmin, true
	case hasPrefixPath(path, "/key"), hasPrefixPath(path, "/team"), hasPrefixPath(path, "/organization"):
		return bus.RoutesAdmin, true
	case hasPrefixPath(path, "/mcp"), hasPrefixPath(path, "/sse"), path == "/messages",
		hasPrefixPath(path, "/mcp-rest"), path == "/v1/mcp/tools", path == "/v1/mcp/registry.json",
		path == "/v1/mcp/user-credentials":
		return bus.RoutesMCP, true
	case hasPrefixPath(path, "/a2a"), hasPrefixPath(path, "/v1/a2a"), hasPrefixPath(path, "/v1/agents"),
		path == "/.well-known/agent.json", path == "/.well-known/agent-card.json":
		return bus.RoutesAgents, true
	}
	rest := strings.TrimPrefix(path, "/v1")
	switch rest {
	case "/models", "/chat/completions", "/embeddings", "/responses":
		return bus.RoutesLLM, true
	}
	if _, ok := serverFirst(path); ok { // LiteLLM's /{server}/mcp
		return bus.RoutesMCP, true
	}
	return "", false
}

// userCredentialPath reports whether path is /v1/mcp/server/{id}/user-credential(s).
func userCredentialPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/v1/mcp/server/")
	if !ok {
		return false
	}
	id, tail, ok := strings.Cut(rest, "/")
	return ok && id != "" && (tail == "user-credential" || tail == "user-credentials")
}

// hasPrefixPath reports whether path is prefix or below it.
func hasPrefixPath(path, prefix string) bool {
	return path == prefix || strings.HasPrefix(path, prefix+"/")
}

// routePolicy holds what routes.go checks.
type routePolicy struct {
	served   []bus.RouteFamily // nil: every family
	external []bus.RouteFamily
}

func newRoutePolicy(served, external []bus.RouteFamily) routePolicy {
	if external == nil {
		external = bus.DefaultExternalRoutes
	}
	return routePolicy{served: served, external: external}
}

func (p routePolicy) serves(f bus.RouteFamily) bool {
	return p.served == nil || slices.Contains(p.served, f)
}

// exposeRoutes wraps h with the two checks: a family this ingress does not
// serve is 404, saying so; a family closed to external callers is 403 for
// them, naming the family and the setting that opens it.
func (g *Ingress) exposeRoutes(h http.Handler) http.Handler {
	p := g.routes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, ok := routeFamily(r.Method, r.URL.Path)
		if !ok {
			h.ServeHTTP(w, r)
			return
		}
		if !p.serves(f) {
			writeRESTError(w, bus.Errorf(bus.ErrNotFound, "this ingress does not serve the %s routes (it was started with --routes %s)",
				f, bus.JoinRouteFamilies(p.served)))
			return
		}
		if slices.Contains(p.external, f) || g.ipClass(r) == bus.Internal {
			h.ServeHTTP(w, r)
			return
		}
		g.log.Info("request refused: route family not open to external callers", "family", string(f), "path", bus.Shorten(r.URL.Path, 128),
			"request_id", requestID(r))
		writeRESTError(w, bus.Errorf(bus.ErrRouteNotExposed,
			"the %s routes are not open to external callers (general_settings.external_routes: [%s]); call from an internal address (mcp_internal_ip_ranges) or add %s to external_routes",
			f, bus.JoinRouteFamilies(p.external), f))
	})
}
