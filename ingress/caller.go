package ingress

import (
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// callerKey returns the gateway key a client sent. x-litellm-api-key wins, as in
// LiteLLM: clients such as Cursor put the key there so that Authorization can
// carry OAuth. "Bearer " is optional in x-litellm-api-key.
func callerKey(r *http.Request) string {
	if v := strings.TrimSpace(r.Header.Get("X-Litellm-Api-Key")); v != "" {
		return stripBearer(v)
	}
	if v := strings.TrimSpace(r.Header.Get("Authorization")); v != "" {
		if k, ok := cutBearer(v); ok {
			return k
		}
	}
	return ""
}

func cutBearer(v string) (string, bool) {
	if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
		return strings.TrimSpace(v[7:]), true
	}
	return "", false
}

func stripBearer(v string) string {
	if k, ok := cutBearer(v); ok {
		return k
	}
	if strings.EqualFold(v, "bearer") { // "Bearer " with nothing after it
		return ""
	}
	return v
}

// selection returns the servers the caller chose: the path, then the
// x-litellm-mcp-server header, then ?server=, then x-mcp-servers (a list).
func selection(pathServer string, r *http.Request) []string {
	if pathServer != "" {
		return []string{pathServer}
	}
	if l := splitList(r.Header.Get("X-Litellm-Mcp-Server")); len(l) > 0 {
		return l
	}
	if v := strings.TrimSpace(r.URL.Query().Get("server")); v != "" {
		return []string{v}
	}
	return splitList(r.Header.Get("X-Mcp-Servers"))
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// ipClass classifies the caller: by the direct peer, or, behind a trusted
// proxy with use_x_forwarded_for on, by the X-Forwarded-For entry the proxies
// vouch for (see xffPolicy). Anything that does not parse is external (fail
// closed).
func (g *Ingress) ipClass(r *http.Request) bus.IPClass {
	addr, ok := g.xff.clientAddr(r)
	if ok && inAny(g.o.InternalRanges, addr) {
		return bus.Internal
	}
	return bus.External
}
