package ingress

import (
	"net/http"
	"strings"
)

// forwardHeaders picks the client headers a worker may send upstream:
// x-mcp-{server}-{header} (per-request credentials; the worker matches server
// names) and headers some server lists in extra_headers. Never forwarded: the
// header that carried the gateway key, x-litellm-api-key, and any value that
// contains the gateway key (in its value, or in its name: x-mcp-{server}-{key}
// would send a header named after the key), so the caller's key cannot reach
// an upstream even when a server's extra_headers names Authorization.
func (g *Ingress) forwardHeaders(r *http.Request, key string) map[string]string {
	var extra map[string]bool
	if g.o.Servers != nil {
		for _, s := range g.o.Servers.List() {
			for _, h := range s.ExtraHeaders {
				if extra == nil {
					extra = map[string]bool{}
				}
				extra[http.CanonicalHeaderKey(h)] = true
			}
		}
	}
	keyHeader := "Authorization"
	if strings.TrimSpace(r.Header.Get("X-Litellm-Api-Key")) != "" {
		keyHeader = "X-Litellm-Api-Key"
	}
	var out map[string]string
	for name, vals := range r.Header {
		if len(vals) == 0 || name == "X-Litellm-Api-Key" || (key != "" && name == keyHeader) {
			continue
		}
		lower := strings.ToLower(name)
		perServer := strings.HasPrefix(lower, "x-mcp-") && lower != "x-mcp-servers"
		if !perServer && !extra[name] {
			continue
		}
		v := vals[0]
		if key != "" && (strings.Contains(v, key) || strings.Contains(lower, strings.ToLower(key))) {
			g.log.Warn("not forwarding a header that contains the caller's gateway key", "request_id", requestID(r), "header", name)
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}
