package auth

import (
	"slices"

	"github.com/mcpbus/mcpbus/bus"
)

// Effective is THE rule: what a virtual key may use, given the key, its team
// (nil when the key has no team) and the team's organization (nil when the
// team has none). Each outer level bounds the one inside it: a key can only
// narrow what its team allows, a team only what its organization allows,
// never widen it; and an empty list means "no restriction at this level", as
// in LiteLLM, so a level without a list inherits the one above it.
//
// Servers: each level (key, team, organization) permits the servers it names
// (mcp_servers) and those in the access groups it is granted
// (mcp_access_groups, matched against each server's access_groups); a level
// with neither does not limit. A server must pass every level that limits:
//   - no level limits: every server (AllServers).
//   - one level limits: that level's.
//   - several limit, without access groups: the intersection of their names
//     (in the key's order, else the team's), and an empty intersection
//     permits no server at all; it never falls back to "all".
//   - with access groups, which servers are in a group is only known where
//     the server records are, so a level that cannot be intersected by name
//     travels apart: the team's as Permissions.Also (against the key's), the
//     organization's as Permissions.Outer (against what key and team leave).
//
// Tools, per permitted server: the intersection of the lists of the levels
// that restrict that server's tools (mcp_tool_permissions[server]), which
// may be empty (no tool of that server is permitted); a server no level
// restricts has no entry, so every tool of it is permitted.
//
// Models (LiteLLM's models): each level's list is a level of
// Permissions.Models every model group must pass (modelLevels). Agents
// (object_permission.agents, agent_access_groups): each level's is a level
// of Permissions.Agents (agentLevels).
//
// A server that cannot be permitted is dropped from Tools, so a tool list can
// never grant a server. Lists are deduplicated; the result shares no memory
// with the records.
func Effective(key bus.KeyRecord, team *bus.TeamRecord, org *bus.OrgRecord) bus.Permissions {
	keyScope := bus.ServerScope{Servers: dedupe(key.MCPServers), Groups: dedupe(key.MCPAccessGroups)}
	var teamScope, orgScope bus.ServerScope
	toolLevels := []map[string][]string{key.MCPToolPermissions}
	if team != nil {
		teamScope = bus.ServerScope{Servers: dedupe(team.MCPServers), Groups: dedupe(team.MCPAccessGroups)}
		toolLevels = append(toolLevels, team.MCPToolPermissions)
	}
	if org != nil {
		orgScope = bus.ServerScope{Servers: dedupe(org.MCPServers), Groups: dedupe(org.MCPAccessGroups)}
		toolLevels = append(toolLevels, org.MCPToolPermissions)
	}
	keyLimits, teamLimits := limits(keyScope), limits(teamScope)

	var p bus.Permissions
	switch {
	case keyLimits && teamLimits && keyScope.Groups == nil && teamScope.Groups == nil:
		p.Servers = intersect(keyScope.Servers, teamScope.Servers)
	case keyLimits && teamLimits:
		p.Servers, p.Groups = keyScope.Servers, keyScope.Groups
		p.Also = &teamScope
	case keyLimits:
		p.Servers, p.Groups = keyScope.Servers, keyScope.Groups
	case teamLimits:
		p.Servers, p.Groups = teamScope.Servers, teamScope.Groups
	default:
		p.AllServers = true
	}
	// The organization bounds what key and team leave.
	switch {
	case !limits(orgScope):
	case p.AllServers:
		p.AllServers = false
		p.Servers, p.Groups = orgScope.Servers, orgScope.Groups
	case p.Groups == nil && orgScope.Groups == nil:
		// Names against names; a team scope kept apart (Also) still applies.
		p.Servers = intersect(p.Servers, orgScope.Servers)
	default:
		p.Outer = &orgScope
	}

	p.AllModels, p.Models = modelLevels(key, team, org)
	p.AllAgents, p.Agents = agentLevels(key, team, org)

	restricted := map[string]struct{}{}
	for _, level := range toolLevels {
		for server := range level {
			restricted[server] = struct{}{}
		}
	}
	for server := range restricted {
		if !mayPermit(p, server) {
			continue
		}
		var tools []string
		first := true
		for _, level := range toolLevels {
			list, limits := level[server]
			if !limits {
				continue
			}
			if first {
				tools, first = dedupe(list), false
			} else {
				tools = intersect(tools, dedupe(list))
			}
		}
		if tools == nil {
			tools = []string{} // restricted to nothing, not unrestricted
		}
		if p.Tools == nil {
			p.Tools = map[string][]string{}
		}
		p.Tools[server] = tools
	}
	return p
}

// modelLevels is the models rule, LiteLLM's: a key's models list limits
// it, and so do its team's and the team's organization's; a key without
// one (or with all-team-models) may use what its team may, a team or
// organization without one (or with all-proxy-models) does not limit.
// Unlike servers, lists are not intersected by name (wildcards and access
// groups are matched against the model groups where they are known,
// bus.AllowsModel): each limiting list is a level every model must pass.
func modelLevels(key bus.KeyRecord, team *bus.TeamRecord, org *bus.OrgRecord) (all bool, levels [][]string) {
	limiting := func(list []string, open ...string) []string {
		l := dedupe(list)
		for _, o := range open {
			if slices.Contains(l, o) {
				return nil
			}
		}
		return l
	}
	if l := limiting(key.Models, bus.AllTeamModels, bus.AllProxyModels); l != nil {
		levels = append(levels, l)
	}
	if team != nil {
		if l := limiting(team.Models, bus.AllProxyModels); l != nil {
			levels = append(levels, l)
		}
	}
	if org != nil {
		if l := limiting(org.Models, bus.AllProxyModels); l != nil {
			levels = append(levels, l)
		}
	}
	return len(levels) == 0, levels
}

// agentLevels is the agents rule, LiteLLM's: a key's agents and
// agent_access_groups limit it, and so do its team's and the team's
// organization's; no level with either, every agent; otherwise an agent
// must pass every level that has them (the intersection, matched against
// each agent's access groups where the agents are known, bus.AllowsAgent).
func agentLevels(key bus.KeyRecord, team *bus.TeamRecord, org *bus.OrgRecord) (all bool, levels []bus.AgentScope) {
	add := func(of string, agents, groups []string) {
		if a, g := dedupe(agents), dedupe(groups); a != nil || g != nil {
			levels = append(levels, bus.AgentScope{Of: of, Agents: a, Groups: g})
		}
	}
	add("key", key.Agents, key.AgentAccessGroups)
	if team != nil {
		add("team", team.Agents, team.AgentAccessGroups)
	}
	if org != nil {
		add("org", org.Agents, org.AgentAccessGroups)
	}
	return len(levels) == 0, levels
}

// limits reports whether a level limits servers at all.
func limits(c bus.ServerScope) bool {
	return len(c.Servers) > 0 || len(c.Groups) > 0
}

// mayPermit reports whether p can permit the server named server: by name, or
// (access groups being matched only against server records) possibly by group.
func mayPermit(p bus.Permissions, server string) bool {
	if p.AllServers {
		return true
	}
	admits := func(c bus.ServerScope) bool {
		return len(c.Groups) > 0 || slices.Contains(c.Servers, server)
	}
	return admits(bus.ServerScope{Servers: p.Servers, Groups: p.Groups}) && (p.Also == nil || admits(*p.Also)) && (p.Outer == nil || admits(*p.Outer))
}

// dedupe returns a copy of s without empty strings and repeats, in order (nil
// when nothing is left).
func dedupe(s []string) []string {
	var out []string
	for _, v := range s {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// intersect returns the members of a that are also in b, in a's order; a
// non-nil empty slice when there are none.
func intersect(a, b []string) []string {
	out := []string{}
	for _, v := range a {
		if slices.Contains(b, v) {
			out = append(out, v)
		}
	}
	return out
}

// toolSearch is whether a key's requests are in tool search mode
// (bus.MetaToolSearch): the key's metadata says, else its team's.
func toolSearch(key bus.KeyRecord, team *bus.TeamRecord) bool {
	if on, set, _ := bus.MetaBool(key.Metadata, bus.MetaToolSearch); set {
		return on
	}
	if team != nil {
		on, _, _ := bus.MetaBool(team.Metadata, bus.MetaToolSearch)
		return on
	}
	return false
}
