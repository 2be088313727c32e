package ingress

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/mcpbus/mcpbus/bus"
)

// The registry API: LiteLLM's /v1/mcp/server endpoints, master key only,
// relayed to the registry service (relayAsMaster). The other REST routes:
// rest.go.

// /v1/mcp/server: GET lists, POST creates, PUT updates.
func (g *Ingress) serveServers(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet, http.MethodPost, http.MethodPut) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		g.registryAdmin(w, r, "list", bus.SubjectRegistryList, func() ([]byte, *bus.Error) { return []byte("{}"), nil })
	case http.MethodPost:
		g.registryAdmin(w, r, "create", bus.SubjectRegistryCreate, func() ([]byte, *bus.Error) { return g.readAdminBody(w, r) })
	case http.MethodPut:
		g.registryAdmin(w, r, "update", bus.SubjectRegistryUpdate, func() ([]byte, *bus.Error) { return g.readAdminBody(w, r) })
	}
}

// /v1/mcp/server/{id}: GET reads, DELETE deletes (?revision=N: only if
// still at that revision).
func (g *Ingress) serveServer(w http.ResponseWriter, r *http.Request) {
	if !methodAllowed(w, r, http.MethodGet, http.MethodDelete) {
		return
	}
	g.serveServerByID(w, r, r.PathValue("id"))
}

func (g *Ingress) serveServerByID(w http.ResponseWriter, r *http.Request, id string) {
	ref := func() ([]byte, *bus.Error) {
		in := bus.ServerRef{Name: id}
		if v := r.URL.Query().Get("revision"); v != "" && r.Method == http.MethodDelete {
			rev, err := strconv.ParseUint(v, 10, 64)
			if err != nil || rev == 0 {
				return nil, bus.Errorf(bus.ErrBadRequest, "query parameter revision: expected a positive whole number")
			}
			in.Revision = &rev
		}
		b, _ := json.Marshal(in)
		return b, nil
	}
	if r.Method == http.MethodDelete {
		g.registryAdmin(w, r, "delete", bus.SubjectRegistryDelete, ref)
		return
	}
	g.registryAdmin(w, r, "get", bus.SubjectRegistryGet, ref)
}

// registryAdmin runs one registry CRUD request: the key must be the master
// key; the body (built after the key check, so refused callers never have
// theirs read) goes to subject and the registry's answer is relayed.
func (g *Ingress) registryAdmin(w http.ResponseWriter, r *http.Request, op, subject string, body func() ([]byte, *bus.Error)) {
	g.relayAsMaster(w, r, masterRelay{api: "registry", service: "registry service", forbidden: "only the master key may manage MCP servers",
		logKey: "op", logVal: op, subject: subject}, body)
}
