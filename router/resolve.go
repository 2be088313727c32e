package router

import (
	"slices"

	"github.com/mcpbus/mcpbus/bus"
)

// resolve picks the servers this message is for: one server (many is nil),
// which gets the message as it came and answers with bare names, or several
// (many, in name order), which the router aggregates. Visibility decides
// first, then the key's permissions: a server an external caller may not see
// answers exactly like one that does not exist.
//
//   - no selection: every visible server the key may use (one: that one);
//   - a selection (path, header, ?server= or x-mcp-servers): exactly those,
//     each of which must exist, be visible and be permitted.
func (r *Router) resolve(env bus.Envelope) (bus.ServerSpec, []bus.ServerSpec, *bus.Error) {
	switch len(env.Servers) {
	case 0:
		return r.resolveAll(env)
	case 1:
		s, e := r.selected(env, env.Servers[0])
		return s, nil, e
	}
	names := slices.Clone(env.Servers)
	slices.Sort(names)
	names = slices.Compact(names)
	many := make([]bus.ServerSpec, 0, len(names))
	for _, n := range names {
		s, e := r.selected(env, n)
		if e != nil {
			return bus.ServerSpec{}, nil, e
		}
		many = append(many, s)
	}
	if len(many) == 1 {
		return many[0], nil, nil
	}
	return bus.ServerSpec{}, many, nil
}

// selected checks one server the caller named.
func (r *Router) selected(env bus.Envelope, name string) (bus.ServerSpec, *bus.Error) {
	s, ok := r.cache.Get(name)
	if !ok || !visible(s, env) {
		return bus.ServerSpec{}, bus.Errorf(bus.ErrUnknownServer, "unknown MCP server %q", name)
	}
	if !env.Caller.Permissions.AllowsServer(s.Name) {
		return bus.ServerSpec{}, bus.Errorf(bus.ErrNotPermitted, "key '%s' may not use MCP server '%s'", env.Caller.Name(), s.Name)
	}
	return s, nil
}

// resolveAll is the no-selection case. It allocates only when it aggregates.
func (r *Router) resolveAll(env bus.Envelope) (bus.ServerSpec, []bus.ServerSpec, *bus.Error) {
	all := r.cache.List()
	usable, hidden, first := 0, 0, -1
	for i, s := range all {
		if !visible(s, env) {
			continue
		}
		if !env.Caller.Permissions.AllowsServer(s.Name) {
			hidden++
			continue
		}
		if first < 0 {
			first = i
		}
		usable++
	}
	switch {
	case usable == 1:
		return all[first], nil, nil
	case usable == 0 && hidden > 0:
		return bus.ServerSpec{}, nil, bus.Errorf(bus.ErrNotPermitted, "key '%s' may not use any MCP server", env.Caller.Name())
	case usable == 0:
		return bus.ServerSpec{}, nil, bus.Errorf(bus.ErrUnknownServer, "no MCP server is available to this caller")
	}
	many := make([]bus.ServerSpec, 0, usable)
	for _, s := range all[first:] {
		if visible(s, env) && env.Caller.Permissions.AllowsServer(s.Name) {
			many = append(many, s)
		}
	}
	return bus.ServerSpec{}, many, nil
}
