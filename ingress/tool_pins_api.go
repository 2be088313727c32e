package ingress

import (
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// Pinned tool definitions (bus/pins.go, docs/PINNING.md), master key only,
// relayed to the registry like the rest of the server admin API:
//
//	GET  /v1/mcp/server/{id}/tool-pins                 the server's pins and their status
//	GET  /v1/mcp/server/{id}/tool-pins/{tool}          one pin: pinned and pending definition, diff, history
//	POST /v1/mcp/server/{id}/tool-pins/{tool}/approve  pin the pending definition ({"hash": "<pending_hash>"} optional)
//	POST /v1/mcp/server/{id}/tool-pins/{tool}/reject   keep the pinned definition, drop the pending one (same body)

func (g *Ingress) toolPinRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/v1/mcp/server/{id}/tool-pins", g.serveToolPins)
	mux.HandleFunc("/v1/mcp/server/{id}/tool-pins/{tool}", g.serveToolPin)
	mux.HandleFunc("/v1/mcp/server/{id}/tool-pins/{tool}/approve", g.serveToolPinDecision("approve", bus.SubjectRegistryPinsApprove))
	mux.HandleFunc("/v1/mcp/server/{id}/tool-pins/{tool}/reject", g.serveToolPinDecision("reject", bus.SubjectRegistryPinsReject))
}

// toolPinsPath reports whether path is /v1/mcp/server/{id}/tool-pins or below
// it: the admin family in every method (reading pins is an admin's business).
func toolPinsPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/v1/mcp/server/")
	if !ok {
		return false
	}
	id, tail, ok := strings.Cut(rest, "/")
	return ok && id != "" && hasPrefixPath(tail, "tool-pins")
}

func (g *Ingress) serveToolPins(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	g.registryAdmin(w, r, "tool pins", bus.SubjectRegistryPinsList, func() ([]byte, *bus.Error) {
		ref := bus.PinRef{Server: r.PathValue("id")}
		return marshalValid(ref, ref.Validate(false))
	})
}

func (g *Ingress) serveToolPin(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet) {
		return
	}
	g.registryAdmin(w, r, "tool pin", bus.SubjectRegistryPinsGet, func() ([]byte, *bus.Error) {
		ref := bus.PinRef{Server: r.PathValue("id"), Tool: r.PathValue("tool")}
		return marshalValid(ref, ref.Validate(true))
	})
}

func (g *Ingress) serveToolPinDecision(op, subject string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !methodAllowed(w, r, http.MethodPost) {
			return
		}
		g.registryAdmin(w, r, "tool pin "+op, subject, func() ([]byte, *bus.Error) {
			var in struct {
				Hash string `json:"hash"`
			}
			if e := g.readOpsBody(w, r, &in, `{"hash": "<pending_hash>"} (optional)`); e != nil {
				return nil, e
			}
			ref := bus.PinRef{Server: r.PathValue("id"), Tool: r.PathValue("tool"), Hash: in.Hash}
			return marshalValid(ref, ref.Validate(true))
		})
	}
}
