package ingress

import (
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// routesOrJSON serves LiteLLM's /{server}/mcp as /mcp/{server} (a pattern
// the mux cannot hold beside /mcp/), and answers what no route takes (404,
// or 405 for a route taken with another method) in the REST error shape
// every other answer has, instead of net/http's plain text. The Allow
// header of a 405 is kept.
func routesOrJSON(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		if server, ok := serverFirst(r.URL.Path); ok {
			r2 := r.Clone(r.Context())
			r2.URL.Path, r2.URL.RawPath = "/mcp/"+server, ""
			mux.ServeHTTP(w, r2)
			return
		}
		mux.ServeHTTP(&unmatched{ResponseWriter: w, r: r}, r)
	})
}

// serverFirst reads LiteLLM's per-server route /{server}/mcp.
func serverFirst(path string) (string, bool) {
	rest, ok := strings.CutSuffix(strings.TrimSuffix(path, "/"), "/mcp")
	server, ok2 := strings.CutPrefix(rest, "/")
	if !ok || !ok2 || server == "" || strings.Contains(server, "/") {
		return "", false
	}
	return server, true
}

// noRoute is the answer for a path no route takes. It names neither the
// path nor the method, so an endpoint hidden from a caller (metrics.go)
// answers exactly as an absent one.
func noRoute(w http.ResponseWriter) {
	writeRESTError(w, bus.Errorf(bus.ErrNotFound, "no such route: mcpbus serves /mcp, /sse, /messages, /v1/mcp/..., /mcp-rest/..., /key/..., /team/..., /health/..., /v1/models, /v1/chat/completions, /a2a/{agent}, /v1/agents (docs/ARCHITECTURE.md)"))
}

// unmatched rewrites the mux's own 404 and 405 answers.
type unmatched struct {
	http.ResponseWriter
	r       *http.Request
	written bool // our answer is out: drop the mux's body
}

func (u *unmatched) WriteHeader(code int) {
	if u.written {
		return
	}
	switch code {
	case http.StatusNotFound:
		u.written = true
		noRoute(u.ResponseWriter)
	case http.StatusMethodNotAllowed:
		u.written = true
		writeRESTError(u.ResponseWriter, bus.Errorf(bus.ErrMethodNotAllowed, "%s is not served on %s; allowed: %s",
			u.r.Method, bus.Shorten(u.r.URL.Path, 128), strings.Join(u.Header().Values("Allow"), ", ")))
	default:
		u.ResponseWriter.WriteHeader(code)
	}
}

func (u *unmatched) Write(b []byte) (int, error) {
	if u.written {
		return len(b), nil
	}
	return u.ResponseWriter.Write(b)
}
