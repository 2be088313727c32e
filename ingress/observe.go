package ingress

import "net/http"

// instrument wraps the whole HTTP surface with tracing (tracing.go) and
// metrics (metrics.go).
func (g *Ingress) instrument(h http.Handler) http.Handler {
	return g.traceHTTP(g.meterHTTP(h))
}
