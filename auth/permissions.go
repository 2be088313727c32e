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
// Servers:
//   - key and team both list servers: the intersection (in the key's order). An
//     empty intersection permits no server at all; it never falls back to "all".
//   - only the team lists servers: the team's.
//   - only the key lists servers (or there is no team): the key's.
//   - neither lists servers: every server (AllServers).
//
// Tools, per permitted server:
//   - key and team both restrict the server's tools: the intersection (which may
//     be empty: no tool of that server is permitted).
//   - only one of them restricts: that one's list.
//   - neither: no entry, so every tool of the server is permitted.
//
// A server that is not permitted is dropped from Tools, so a tool list can never
// grant a server. Lists are deduplicated; the result shares no memory with the
// records.
func Effective(key bus.KeyRecord, team *bus.TeamRecord) bus.Permissions {
	var teamServers []string
	var teamTools map[string][]string
	if team != nil {
		teamServers, teamTools = team.MCPServers, team.MCPToolPermissions
	}
	keyServers := dedupe(key.MCPServers)
	teamServers = dedupe(teamServers)

	var p bus.Permissions
	switch {
	case len(keyServers) > 0 && len(teamServers) > 0:
		p.Servers = intersect(keyServers, teamServers)
	case len(keyServers) > 0:
		p.Servers = keyServers
	case len(teamServers) > 0:
		p.Servers = teamServers
	default:
		p.AllServers = true
	}

	for server := range union(key.MCPToolPermissions, teamTools) {
		if !p.AllowsServer(server) {
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
