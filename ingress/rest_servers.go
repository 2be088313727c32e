package ingress

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// Which servers a REST request is about (health, tool listing,
// registry.json): the ingress's server list, and /mcp's rule on it.

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
		return nil, bus.Errorf(bus.ErrNotPermitted, "%s may not use any MCP server", id.Who())
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
			return nil, bus.Errorf(bus.ErrNotPermitted, "%s may not use MCP server '%s'", id.Who(), s.Name)
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
