package auth

import (
	"slices"

	"github.com/mcpbus/mcpbus/bus"
)

// Effective is THE rule: what a virtual key may use, given the key and its team
// (nil when the key has no team). A key can only narrow what its team allows,
// never widen it, and an empty list means "no restriction at this level", as in
// LiteLLM.
//
// Servers: each level (key, team) permits the servers it names (mcp_servers)
// and those in the access groups it is granted (mcp_access_groups, matched
// against each server's access_groups); a level with neither does not limit.
//   - key and team both limit: a server must pass both. Without access groups
//     that is the intersection of the names (in the key's order), and an empty
//     intersection permits no server at all; it never falls back to "all".
//     With access groups, which servers are in a group is only known where the
//     server records are, so the team's limit travels apart (Permissions.Also).
//   - only the team limits: the team's.
//   - only the key limits (or there is no team): the key's.
//   - neither: every server (AllServers).
//
// Tools, per permitted server:
//   - key and team both restrict the server's tools: the intersection (which may
//     be empty: no tool of that server is permitted).
//   - only one of them restricts: that one's list.
//   - neither: no entry, so every tool of the server is permitted.
//
// A server that cannot be permitted is dropped from Tools, so a tool list can
// never grant a server. Lists are deduplicated; the result shares no memory
// with the records.
func Effective(key bus.KeyRecord, team *bus.TeamRecord) bus.Permissions {
	keyScope := bus.ServerScope{Servers: dedupe(key.MCPServers), Groups: dedupe(key.MCPAccessGroups)}
	var teamScope bus.ServerScope
	var teamTools map[string][]string
	if team != nil {
		teamScope = bus.ServerScope{Servers: dedupe(team.MCPServers), Groups: dedupe(team.MCPAccessGroups)}
		teamTools = team.MCPToolPermissions
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

	p.AllModels, p.Models = modelLevels(key, team)
	p.AllAgents, p.Agents = agentLevels(key, team)

	for server := range union(key.MCPToolPermissions, teamTools) {
		if !mayPermit(p, server) {
			continue
		}
		kt, keyLimits := key.MCPToolPermissions[server]
		tt, teamLimits := teamTools[server]
		var tools []string
		switch {
		case keyLimits && teamLimits:
			tools = intersect(dedupe(kt), dedupe(tt))
		case keyLimits:
			tools = dedupe(kt)
		default:
			tools = dedupe(tt)
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
// it, and so does its team's; a key without one (or with all-team-models)
// may use what its team may, a team without one (or with
// all-proxy-models) every model. Unlike servers, lists are not
// intersected by name (wildcards and access groups are matched against
// the model groups where they are known, bus.AllowsModel): each limiting
// list is a level every model must pass.
func modelLevels(key bus.KeyRecord, team *bus.TeamRecord) (all bool, levels [][]string) {
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
	return len(levels) == 0, levels
}

// agentLevels is the agents rule, LiteLLM's: a key's agents and
// agent_access_groups limit it, and so do its team's; neither at either
// level, every agent; one level's, that level's; both, an agent must pass
// both (the intersection, matched against each agent's access groups
// where the agents are known, bus.AllowsAgent).
func agentLevels(key bus.KeyRecord, team *bus.TeamRecord) (all bool, levels []bus.AgentScope) {
	add := func(of string, agents, groups []string) {
		if a, g := dedupe(agents), dedupe(groups); a != nil || g != nil {
			levels = append(levels, bus.AgentScope{Of: of, Agents: a, Groups: g})
		}
	}
	add("key", key.Agents, key.AgentAccessGroups)
	if team != nil {
		add("team", team.Agents, team.AgentAccessGroups)
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
	return admits(bus.ServerScope{Servers: p.Servers, Groups: p.Groups}) && (p.Also == nil || admits(*p.Also))
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

func union(a, b map[string][]string) map[string]struct{} {
	out := make(map[string]struct{}, len(a)+len(b))
	for k := range a {
		out[k] = struct{}{}
	}
	for k := range b {
		out[k] = struct{}{}
	}
	return out
}
