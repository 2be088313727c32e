package ingress

import (
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// The REST routes beside MCP: the admin API (LiteLLM's /key/* and /team/*,
// admin.go) and the registry API (LiteLLM's /v1/mcp/server endpoints,
// registry_api.go), both master key only and relayed to their service on the
// bus (relayAsMaster, relay.go); server health (health_api.go), REST tool
// access (/v1/mcp/tools, /mcp-rest/..., rest_tools.go) and discovery
// (/v1/mcp/registry.json, registry_json.go).
//
// Health and tool listing pick servers by the rule /mcp applies
// (restServers, rest_servers.go); tool listing and calls then go, per server,
// through the router as a JSON-RPC request with the caller's identity and IP
// class in the envelope, exactly like a POST to /mcp/{server}, so visibility,
// key permissions, allowed_tools/disallowed_tools and tool permissions apply
// where they always do. A denial is an error naming the reason, never an
// empty answer.

// restRoutes registers the REST routes but the admin API's (adminRoutes).
func (g *Ingress) restRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/v1/mcp/server", g.serveServers)
	mux.HandleFunc("/v1/mcp/server/{id}", g.serveServer)
	mux.HandleFunc("/v1/mcp/server/health", g.serveHealth)
	mux.HandleFunc("/v1/mcp/tools", g.serveToolsV1)
	mux.HandleFunc("/v1/mcp/registry.json", g.serveRegistryJSON)
	mux.HandleFunc("/mcp-rest/tools/list", g.serveRESTToolsList)
	mux.HandleFunc("/mcp-rest/tools/call", g.serveRESTToolsCall)
	g.serverOpsRoutes(mux)      // server_ops_api.go
	g.userCredentialRoutes(mux) // user_credentials.go
	g.toolPinRoutes(mux)        // tool_pins_api.go
}

// methodAllowed answers 405 (with Allow) unless r uses one of methods.
func methodAllowed(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeRESTError(w, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
	return false
}

// restCaller verifies the key of a REST request and classifies its address;
// on a refusal it has answered with the REST error and reports false.
func (g *Ingress) restCaller(w http.ResponseWriter, r *http.Request) (bus.Identity, bus.IPClass, bool) {
	env, e := g.envelopeOf(r)
	if e != nil {
		writeRESTError(w, e)
		return bus.Identity{}, "", false
	}
	return env.Caller, env.IPClass, true
}

// envelopeOf checks r's Origin and Host, verifies its key and makes its
// envelope: the one caller check of the routes beside MCP (REST, LLM, A2A
// and the agent cards). The rebinding rule of /mcp comes first: in open
// mode (no master key, on loopback) every caller may call tools, so a web
// page must not be able to make a local browser POST to them.
func (g *Ingress) envelopeOf(r *http.Request) (bus.Envelope, *bus.Error) {
	if e := g.origin.checkOn(r, r.URL.Path); e != nil {
		return bus.Envelope{}, e
	}
	id, e := g.verify(r)
	if e != nil {
		return bus.Envelope{}, e
	}
	return bus.Envelope{RequestID: requestID(r), Caller: id, IPClass: g.ipClass(r)}, nil
}
