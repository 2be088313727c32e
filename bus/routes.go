package bus

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// RouteFamily is one family of the gateway's HTTP routes. An ingress serves
// some families (`--routes`), external callers reach some
// (general_settings.external_routes), and an ingress's bus user may be
// limited to the subjects of some (BusUser.Routes, natsauth.go): a public
// edge that serves only MCP cannot spend the LLM providers' keys even when
// it is compromised.
type RouteFamily string

const (
	RoutesMCP     RouteFamily = "mcp"     // /mcp, /sse, /messages, /mcp-rest/..., /v1/mcp/tools, /{server}/mcp
	RoutesLLM     RouteFamily = "llm"     // /v1/models, /v1/chat/completions, /v1/embeddings, /v1/responses
	RoutesAgents  RouteFamily = "agents"  // /a2a/..., /v1/a2a/..., /v1/agents, /.well-known/agent*.json
	RoutesAdmin   RouteFamily = "admin"   // /key/..., /team/..., /organization/..., /v1/mcp/server...
	RoutesUI      RouteFamily = "ui"      // /ui
	RoutesMetrics RouteFamily = "metrics" // /metrics
)

// RouteFamilies are every family, in the order messages list them.
var RouteFamilies = []RouteFamily{RoutesMCP, RoutesLLM, RoutesAgents, RoutesAdmin, RoutesUI, RoutesMetrics}

// DefaultExternalRoutes are the families external callers reach when
// general_settings.external_routes is not set: MCP only, as LiteLLM advises
// for a gateway on the internet.
var DefaultExternalRoutes = []RouteFamily{RoutesMCP}

// ErrRouteNotExposed: an external caller asked for a route family that
// general_settings.external_routes does not open to external callers.
var ErrRouteNotExposed = Kind{"MCPBUS_ROUTE_NOT_EXPOSED", -32043, http.StatusForbidden, http.StatusForbidden}

// ParseRouteFamilies reads a list of family names ("all" is every family).
// The error names the bad entry and the valid names.
func ParseRouteFamilies(names []string) ([]RouteFamily, error) {
	out := []RouteFamily{}
	for i, n := range names {
		n = strings.ToLower(strings.TrimSpace(n))
		if n == "all" {
			return slices.Clone(RouteFamilies), nil
		}
		f := RouteFamily(n)
		if !slices.Contains(RouteFamilies, f) {
			return nil, fmt.Errorf("[%d]: %q is not a route family (one of %s, or all)", i, Shorten(n, 32), JoinRouteFamilies(RouteFamilies))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out, nil
}

// JoinRouteFamilies lists families comma-separated ("none" for none).
func JoinRouteFamilies(fs []RouteFamily) string {
	if len(fs) == 0 {
		return "none"
	}
	s := make([]string, len(fs))
	for i, f := range fs {
		s[i] = string(f)
	}
	return strings.Join(s, ",")
}
