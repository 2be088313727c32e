package ingress

import "net/http"

// traceHTTP starts a span per HTTP request (to be built).
func (g *Ingress) traceHTTP(h http.Handler) http.Handler { return h }
