package ingress

import "net/http"

// meterHTTP records request metrics (to be built).
func (g *Ingress) meterHTTP(h http.Handler) http.Handler { return h }

// metricsRoutes registers /metrics (to be built).
func (g *Ingress) metricsRoutes(mux *http.ServeMux) {}
