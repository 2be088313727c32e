package ingress

import "net/http"

// registryRoutes registers the registry REST API, discovery and REST tool
// access (to be built).
func (g *Ingress) registryRoutes(mux *http.ServeMux) {}
