package ingress

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	mcpbusversion "github.com/mcpbus/mcpbus/bus/version"
)

// The MCP registry document (GET /v1/mcp/registry.json), as LiteLLM serves it.
type registryDoc struct {
	Servers []registryEntry `json:"servers"`
}

type registryEntry struct {
	Server registryServer `json:"server"`
}

type registryServer struct {
	Name        string           `json:"name"`
	Title       string           `json:"title"`
	Description string           `json:"description"`
	Version     string           `json:"version"`
	Remotes     []registryRemote `json:"remotes"`
}

type registryRemote struct {
	Type string `json:"type"`
	URL  string `json:"url"`
}

// GET /v1/mcp/registry.json: 404 unless enable_mcp_registry. Public like
// LiteLLM's (no key), so it lists only what the caller's IP class may see:
// the gateway itself, then each visible server. Key permissions are not
// applied (there is no key); using a server still needs one. The Host and
// Origin pass the MCP endpoints' check first (403 otherwise), so the URLs it
// writes name only a host the gateway accepts, or a trusted proxy's
// forwarded one.
func (g *Ingress) serveRegistryJSON(w http.ResponseWriter, r *http.Request) {
	// The URLs below are built from the Host (baseURL): it must be one of
	// ours, by the rule of the MCP endpoints (origin.go), before anything.
	if e := g.origin.checkOn(r, "/v1/mcp/registry.json"); e != nil {
		writeRESTError(w, e)
		return
	}
	if !g.o.EnableMCPRegistry {
		writeRESTError(w, bus.Errorf(bus.ErrNotFound, "the MCP registry is not enabled (general_settings.enable_mcp_registry)"))
		return
	}
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	class := g.ipClass(r)
	servers, e := g.servers(r.Context())
	if e != nil {
		writeRESTError(w, e)
		return
	}
	base := g.baseURL(r)
	version := g.o.Version
	if version == "" {
		version = mcpbusversion.Version
	}
	doc := registryDoc{Servers: []registryEntry{{registryServer{
		Name:        "mcpbus",
		Title:       "mcpbus",
		Description: "MCP gateway: the servers listed after this one, behind one endpoint",
		Version:     version,
		Remotes:     []registryRemote{{Type: "streamable-http", URL: base + "/mcp"}},
	}}}}
	sorted := append([]bus.ServerSpec(nil), servers...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, s := range sorted {
		if !bus.Visible(s, class) {
			continue
		}
		title := s.Alias
		if title == "" {
			title = s.Name
		}
		desc := s.Description
		if desc == "" {
			desc = "MCP server " + s.Name + " through mcpbus"
		}
		doc.Servers = append(doc.Servers, registryEntry{registryServer{
			Name:        s.Name,
			Title:       title,
			Description: desc,
			Version:     version,
			Remotes:     []registryRemote{{Type: "streamable-http", URL: base + "/mcp/" + url.PathEscape(s.Name)}},
		}})
	}
	body, _ := json.Marshal(doc)
	writeJSON(w, http.StatusOK, body)
}

// baseURL is the gateway's URL as the client reached it: scheme and Host of
// the request, or X-Forwarded-Proto / X-Forwarded-Host when the direct peer is
// a trusted proxy (use_x_forwarded_for and mcp_trusted_proxy_ranges, the same
// trust as X-Forwarded-For). A host that is not a plain host[:port] is not
// used. The caller has checked the Host (originPolicy.checkOn).
func (g *Ingress) baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if g.fromTrustedProxy(r) {
		if p := strings.ToLower(g.forwardedEntry(r, "X-Forwarded-Proto")); p == "http" || p == "https" {
			scheme = p
		}
		if h := g.forwardedEntry(r, "X-Forwarded-Host"); validHost(h) {
			host = h
		}
	}
	if !validHost(host) {
		host = "localhost"
	}
	return scheme + "://" + host
}

func (g *Ingress) fromTrustedProxy(r *http.Request) bool {
	peer, ok := parsePeer(r.RemoteAddr)
	return ok && g.xff.enabled && inAny(g.xff.trusted, peer)
}

// forwardedEntry reads a forwarded header the way X-Forwarded-For is read:
// the entry mcp_xff_num_trusted_hops places from the right, written by the
// outermost trusted proxy. A list shorter than that was set (not appended) by
// a proxy: its first entry.
func (g *Ingress) forwardedEntry(r *http.Request, name string) string {
	var entries []string
	for _, line := range r.Header.Values(name) {
		for _, e := range strings.Split(line, ",") {
			entries = append(entries, strings.TrimSpace(e))
		}
	}
	if len(entries) == 0 {
		return ""
	}
	hops := max(g.xff.hops, 1)
	if len(entries) >= hops {
		return entries[len(entries)-hops]
	}
	return entries[0]
}

// validHost accepts host or host:port made of host name, IPv4 or bracketed
// IPv6 characters only.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	u, err := url.Parse("http://" + h)
	return err == nil && u.Host == h && u.Hostname() != ""
}
