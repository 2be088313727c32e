package auth

import (
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// Applying the fields a key or team write may set (bus.CommonFields, in
// LiteLLM's shapes, bus/admin_api.go) to a record.

// mcpLimits points at a key's or team's permission fields: MCP servers
// and tools, models, and A2A agents.
type mcpLimits struct {
	servers, groups     *[]string
	tools               *map[string][]string
	models              *[]string
	llm                 *bus.LLMLimits
	agents, agentGroups *[]string
}

// MaxModelEntries and MaxModelEntry bound a key's or team's models list.
const (
	MaxModelEntries = 64
	MaxModelEntry   = 128
)

// applyModels checks and sets a models list: names, access groups,
// wildcards, all-proxy-models and all-team-models, each printable.
func applyModels(list []string, to *[]string) *bus.Error {
	if len(list) > MaxModelEntries {
		return bus.Errorf(bus.ErrBadRequest, "models: %d entries; at most %d", len(list), MaxModelEntries)
	}
	for i, m := range list {
		if m == "" || len(m) > MaxModelEntry || !bus.ValidHeaderValue(m) || strings.ContainsAny(m, " \t") {
			return bus.Errorf(bus.ErrBadRequest, "models[%d]: %q is not a model name, access group or wildcard (1-%d printable characters, no spaces)", i, bus.Shorten(m, 64), MaxModelEntry)
		}
	}
	*to = dedupe(list)
	return nil
}

// applyPerms sets the permission fields present in p on m.
func applyPerms(p bus.PermFields, m mcpLimits) *bus.Error {
	ms, mg, mt := p.MCPServers, p.MCPAccessGroups, p.MCPToolPermissions
	if op := p.ObjectPermission; op != nil {
		if ms == nil {
			ms = op.MCPServers
		}
		if mg == nil {
			mg = op.MCPAccessGroups
		}
		if mt == nil {
			mt = op.MCPToolPermissions
		}
		if e := applyAgents(op, m); e != nil {
			return e
		}
	}
	if ms != nil {
		for _, name := range *ms {
			if !bus.ValidToken(name) {
				return bus.Errorf(bus.ErrBadRequest, "mcp_servers: %q is not a server name", bus.Shorten(name, 64))
			}
		}
		*m.servers = dedupe(*ms)
	}
	if mg != nil {
		for _, g := range *mg {
			if !bus.ValidToken(g) {
				return bus.Errorf(bus.ErrBadRequest, "mcp_access_groups: %q is not an access group name (letters, digits, '-' and '_')", bus.Shorten(g, 64))
			}
		}
		*m.groups = dedupe(*mg)
	}
	if mt != nil {
		out := map[string][]string{}
		for server, list := range *mt {
			if !bus.ValidToken(server) {
				return bus.Errorf(bus.ErrBadRequest, "mcp_tool_permissions: %q is not a server name", bus.Shorten(server, 64))
			}
			tools := dedupe(list)
			if tools == nil {
				tools = []string{} // an explicit empty list permits no tool
			}
			out[server] = tools
		}
		if len(out) == 0 {
			out = nil
		}
		*m.tools = out
	}
	return nil
}

// applyAgents sets object_permission.agents and agent_access_groups:
// agent names (agent_name, also the agent's id) and access group names.
func applyAgents(op *bus.ObjectPermission, m mcpLimits) *bus.Error {
	for _, f := range []struct {
		field, what string
		in          *[]string
		to          *[]string
	}{{"agents", "an agent name", op.Agents, m.agents}, {"agent_access_groups", "an access group name", op.AgentAccessGroups, m.agentGroups}} {
		if f.in == nil {
			continue
		}
		if len(*f.in) > MaxAgentEntries {
			return bus.Errorf(bus.ErrBadRequest, "object_permission.%s: %d entries; at most %d", f.field, len(*f.in), MaxAgentEntries)
		}
		for i, name := range *f.in {
			if !bus.ValidToken(name) {
				return bus.Errorf(bus.ErrBadRequest, "object_permission.%s[%d]: %q is not %s (letters, digits, '-' and '_')", f.field, i, bus.Shorten(name, 64), f.what)
			}
		}
		*f.to = dedupe(*f.in)
	}
	return nil
}

// MaxAgentEntries bounds a key's or team's agents and agent_access_groups.
const MaxAgentEntries = 256

// applyCommon sets the fields present in f on the given record fields.
func applyCommon(f bus.CommonFields, rpm *int, metadata *map[string]any, blocked *bool, m mcpLimits) *bus.Error {
	if f.RPMLimit != nil {
		if *f.RPMLimit < 0 {
			return bus.Errorf(bus.ErrBadRequest, "rpm_limit: must be 0 (no limit) or more")
		}
		*rpm = *f.RPMLimit
	}
	if f.Metadata != nil {
		if _, _, e := bus.MetaBool(*f.Metadata, bus.MetaToolSearch); e != nil {
			return e
		}
		*metadata = *f.Metadata
	}
	if f.Blocked != nil {
		*blocked = *f.Blocked
	}
	if f.Models != nil {
		if e := applyModels(*f.Models, m.models); e != nil {
			return e
		}
	}
	if e := applyLLMLimits(f, m.llm); e != nil { // llm_fields.go
		return e
	}
	return applyPerms(f.PermFields, m)
}
