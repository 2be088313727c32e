package router

import (
	"context"
	"fmt"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// nameMap is the exact map between exposed names and (server, bare name) of
// one kind (tools or prompts) for one aggregation. missing names the servers
// that could not be listed when it was built.
type nameMap struct {
	byName  map[string]pair
	byPair  map[pair]string
	missing []string
}

// pureName is the exposed name of p without looking at other names (names.go).
func (a *agg) pureName(p pair) string {
	i := a.index(p.server)
	return exposedName(a.ns[i], a.servers[i].Prefix(), a.sep, p.name)
}

func (a *agg) index(server string) int {
	for i, s := range a.servers {
		if s.Name == server {
			return i
		}
	}
	return -1
}

// names returns the name map of kind k, built from the servers' whole lists
// (catalog.go). refresh refetches lists older than minRefresh.
func (r *Router) names(ctx context.Context, a *agg, k *kind, refresh bool) *nameMap {
	key := a.viewKey(k)
	v, gen := r.cat.view(key)
	if m, ok := v.(*nameMap); ok && !refresh {
		return m
	}
	lists := r.entries(ctx, a, k, refresh)
	var pairs []pair
	var missing []string
	for i, items := range lists {
		if items == nil {
			missing = append(missing, a.servers[i].Name)
		}
		for _, n := range items {
			pairs = append(pairs, pair{a.servers[i].Name, n})
		}
	}
	byPair, byName, renamed := assign(pairs, a.pureName)
	for _, p := range renamed {
		r.log.Warn("aggregation: two "+k.what+"s have the same name; the later one (by server, then name) gets a hash suffix",
			"server", p.server, k.what, p.name, "name", byPair[p], "taken_by", fmt.Sprint(byName[a.pureName(p)]))
	}
	// Kept even without the servers that could not be listed: a name of the
	// others routes at once, an unknown one refreshes (lookupName).
	m := &nameMap{byName: byName, byPair: byPair, missing: missing}
	r.cat.keepView(key, m, gen)
	return m
}

// lookupName finds the server and bare name behind an exposed name: from the
// cached map, else from freshly fetched lists. When it finds none, the error
// names the servers that could not be listed.
func (r *Router) lookupName(ctx context.Context, a *agg, k *kind, name string) (pair, *bus.Error) {
	if p, ok := r.names(ctx, a, k, false).byName[name]; ok {
		return p, nil
	}
	m := r.names(ctx, a, k, true)
	if p, ok := m.byName[name]; ok {
		return p, nil
	}
	for i, s := range a.servers {
		if s.Drain && a.ns[i] != "" && strings.HasPrefix(name, a.ns[i]) {
			return pair{}, bus.DrainedError(s) // its tools are not listed while it is drained
		}
	}
	return pair{}, unknown(k.what, name, m.missing)
}

// unknown is the -32602 for a name or URI no server of the aggregation lists.
func unknown(what, name string, missing []string) *bus.Error {
	e := bus.Errorf(bus.ErrInvalidParams, "unknown %s %q: none of this session's MCP servers lists it", what, name)
	if len(missing) > 0 {
		e.Message += " (could not be listed now: " + strings.Join(missing, ", ") + ")"
	}
	return e
}

// namer names the items of an aggregated list page. Names are a function of
// (server, name) alone unless two of the aggregation's namespaces overlap;
// then collisions are possible and the whole catalog's map decides.
func (r *Router) namer(ctx context.Context, a *agg, k *kind) func(pair) string {
	if !a.amb {
		return a.pureName
	}
	m := r.names(ctx, a, k, false)
	return func(p pair) string {
		if n, ok := m.byPair[p]; ok {
			return n
		}
		return a.pureName(p)
	}
}
