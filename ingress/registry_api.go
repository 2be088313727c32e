package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// The REST routes beside MCP: the registry API (LiteLLM's /v1/mcp/server
// endpoints, master key only, answered by the registry service; this file),
// server health (health_api.go), REST tool access (/v1/mcp/tools,
// /mcp-rest/..., rest_tools.go) and discovery (/v1/mcp/registry.json,
// registry_json.go).
//
// Health and tool listing pick servers by the rule /mcp applies
// (restServers); tool listing and calls then go, per server, through the
// router as a JSON-RPC request with the caller's identity and IP class in the
// envelope, exactly like a POST to /mcp/{server}, so visibility, key
// permissions, allowed_tools/disallowed_tools and tool permissions apply where
// they always do. A denial is an error naming the reason, never an empty
// answer.

func (g *Ingress) registryRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/v1/mcp/server", g.serveServers)
	mux.HandleFunc("/v1/mcp/server/{id}", g.serveServer)
	mux.HandleFunc("/v1/mcp/server/health", g.serveHealth)
	mux.HandleFunc("/v1/mcp/tools", g.serveToolsV1)
	mux.HandleFunc("/v1/mcp/registry.json", g.serveRegistryJSON)
	mux.HandleFunc("/mcp-rest/tools/list", g.serveRESTToolsList)
	mux.HandleFunc("/mcp-rest/tools/call", g.serveRESTToolsCall)
}

// methodAllowed answers 405 (with Allow) unless r uses one of methods.
func methodAllowed(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeRESTError(w, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on %s: use %s", r.Method, r.URL.Path, strings.Join(methods, " or ")))
	return false
}

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
	id, class, ok := g.restCaller(w, r)
	if !ok {
		return
	}
	if !id.Admin {
		g.log.Warn("registry API refused: caller is not the master key", "op", op, "request_id", requestID(r), "caller", id.Name(), "ip_class", class)
		writeRESTError(w, bus.Errorf(bus.ErrForbidden, "only the master key may manage MCP servers"))
		return
	}
	data, e := body()
	if e != nil {
		writeRESTError(w, e)
		return
	}
	env := bus.Envelope{RequestID: requestID(r), Caller: id, IPClass: class}
	ctx, cancel := context.WithTimeout(r.Context(), adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data, Header: env.Header()})
	if err != nil {
		e := bus.RequestError("registry service", err)
		g.log.Warn("registry request failed", "op", op, "request_id", env.RequestID, "err", e.Message)
		writeRESTError(w, e)
		return
	}
	if e := bus.ReplyError(reply); e != nil {
		g.log.Info("registry request refused", "op", op, "request_id", env.RequestID, "code", e.Kind.Code)
		writeRESTError(w, e)
		return
	}
	g.log.Info("registry request", "op", op, "request_id", env.RequestID, "caller", id.Name())
	writeJSON(w, http.StatusOK, reply.Data)
}

// servers returns every server (redacted is enough: names, visibility,
// descriptions), from the ingress's cache or else from the registry.
func (g *Ingress) servers(ctx context.Context) ([]bus.ServerSpec, *bus.Error) {
	if g.o.Servers != nil {
		return g.o.Servers.List(), nil
	}
	ctx, cancel := context.WithTimeout(ctx, adminTimeout)
	defer cancel()
	reply, err := g.nc.RequestWithContext(ctx, bus.SubjectRegistryList, []byte("{}"))
	if err != nil {
		return nil, bus.RequestError("registry service", err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	var out []bus.ServerSpec
	if err := json.Unmarshal(reply.Data, &out); err != nil {
		return nil, bus.Errorf(bus.ErrInternal, "registry service sent an unreadable server list")
	}
	return out, nil
}

// restServers picks the servers a REST request is about, in name order, by
// the rule /mcp applies (bus.Resolve), with the same errors:
//
//   - named: each must exist and be visible to the caller's IP class (else
//     UNKNOWN_SERVER naming it: a hidden server answers exactly like a
//     missing one), then be permitted to the key (else NOT_PERMITTED naming
//     the key and the server);
//   - none named: every server the caller may see and use; none visible is
//     UNKNOWN_SERVER, some visible but none permitted is NOT_PERMITTED
//     naming the key.
//
// So it never answers an empty list: a caller that may use no server is told
// why.
func (g *Ingress) restServers(ctx context.Context, id bus.Identity, class bus.IPClass, named []string) ([]bus.ServerSpec, *bus.Error) {
	all, e := g.servers(ctx)
	if e != nil {
		return nil, e
	}
	if len(named) > 0 {
		return pickNamed(all, id, class, named)
	}
	var out []bus.ServerSpec
	visible := 0
	for _, s := range all {
		if !bus.Visible(s, class) {
			continue
		}
		visible++
		if id.Permissions.AllowsServer(s) {
			out = append(out, s)
		}
	}
	switch {
	case len(out) > 0:
		slices.SortFunc(out, func(a, b bus.ServerSpec) int { return strings.Compare(a.Name, b.Name) })
		return out, nil
	case visible > 0:
		return nil, bus.Errorf(bus.ErrNotPermitted, "key '%s' may not use any MCP server", id.Name())
	}
	return nil, bus.Errorf(bus.ErrUnknownServer, "no MCP server is available to this caller")
}

// pickNamed checks each server the caller named (bus.Resolve's selection).
func pickNamed(all []bus.ServerSpec, id bus.Identity, class bus.IPClass, named []string) ([]bus.ServerSpec, *bus.Error) {
	byName := make(map[string]bus.ServerSpec, len(all))
	for _, s := range all {
		byName[s.Name] = s
	}
	names := slices.Clone(named)
	slices.Sort(names)
	names = slices.Compact(names)
	out := make([]bus.ServerSpec, 0, len(names))
	for _, n := range names {
		s, ok := byName[n]
		if !ok || !bus.Visible(s, class) {
			return nil, bus.Errorf(bus.ErrUnknownServer, "unknown MCP server %q", n)
		}
		if !id.Permissions.AllowsServer(s) {
			return nil, bus.Errorf(bus.ErrNotPermitted, "key '%s' may not use MCP server '%s'", id.Name(), s.Name)
		}
		out = append(out, s)
	}
	return out, nil
}

// restRouteError is a denial or a routed request's error as the REST surface
// gives it: a permission denial is a 403 FORBIDDEN there (on the MCP surface
// it is a JSON-RPC NOT_PERMITTED error inside a 200), with the same message.
func restRouteError(e *bus.Error) *bus.Error {
	if e.Kind == bus.ErrNotPermitted {
		return &bus.Error{Kind: bus.ErrForbidden, Message: e.Message}
	}
	return e
}
