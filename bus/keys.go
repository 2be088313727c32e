package bus

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// Virtual keys and teams (LiteLLM-compatible). Keys are stored under the
// SHA-256 of the key (HashKey), never in plaintext; the plaintext is shown once,
// by key generation.
const (
	BucketKeys       = "mcpbus_keys"
	BucketTeams      = "mcpbus_teams"
	BucketRateLimits = "mcpbus_ratelimits"
	// StreamRateCounters holds the rpm_limit counters as JetStream
	// distributed counters (nats-server 2.12+), one subject per key or team
	// and minute (RateCounterSubject).
	StreamRateCounters = "MCPBUS_RPM"
)

// The auth service's subjects (verify, key and team admin, revocations) are
// in subjects.go.

// VerifyCacheTTL is the longest an ingress may reuse a verify answer. It
// reuses one only when the identity is not RateLimited (every call must then
// be counted by auth), never past the key's Expires, and never after a
// message on SubjectAuthChanged.
const VerifyCacheTTL = 30 * time.Second

// KeyRecord is one virtual key as stored in BucketKeys under its hash.
type KeyRecord struct {
	// Token is the key's id: its SHA-256 (what LiteLLM calls the hashed token).
	Token    string `json:"token"`
	KeyAlias string `json:"key_alias,omitempty"`
	TeamID   string `json:"team_id,omitempty"`
	// UserID is the user the key belongs to (LiteLLM's user_id): a key whose
	// user is an org_admin member of its team's organization administers
	// that organization (OrgRecord.AdminOf, Identity.OrgAdmin).
	UserID string `json:"user_id,omitempty"`
	// MCPServers limits the servers the key may use; empty inherits the team's.
	MCPServers []string `json:"mcp_servers,omitempty"`
	// MCPAccessGroups grants the servers in these access groups too (LiteLLM's
	// object_permission.mcp_access_groups); with MCPServers it limits the key.
	MCPAccessGroups []string `json:"mcp_access_groups,omitempty"`
	// MCPToolPermissions limits, per server, the tools the key may list and call.
	MCPToolPermissions map[string][]string `json:"mcp_tool_permissions,omitempty"`
	// Models limits the model groups the key may use (LiteLLM's models:
	// names, access groups, wildcards); empty inherits the team's.
	Models []string `json:"models,omitempty"`
	// Agents and AgentAccessGroups limit the A2A agents the key may use
	// (LiteLLM's object_permission.agents and agent_access_groups); with
	// neither, the key has its team's.
	Agents            []string `json:"agents,omitempty"`
	AgentAccessGroups []string `json:"agent_access_groups,omitempty"`
	RPMLimit          int      `json:"rpm_limit,omitempty"`
	LLMLimits
	// ModelMaxBudget, ModelRPMLimit and ModelTPMLimit limit the key per
	// model group (llm_limits.go).
	ModelMaxBudget map[string]ModelBudget `json:"model_max_budget,omitempty"`
	ModelRPMLimit  map[string]int         `json:"model_rpm_limit,omitempty"`
	ModelTPMLimit  map[string]int         `json:"model_tpm_limit,omitempty"`
	Expires        *time.Time             `json:"expires,omitempty"`
	Blocked        bool                   `json:"blocked,omitempty"`
	Metadata       map[string]any         `json:"metadata,omitempty"`
	CreatedAt      time.Time              `json:"created_at"`
	UpdatedAt      time.Time              `json:"updated_at"`
}

// LLMLimits are the LLM limits keys and teams share: tokens per minute,
// and a budget in USD per budget_duration ("" = ever).
type LLMLimits struct {
	TPMLimit       int      `json:"tpm_limit,omitempty"`
	MaxBudget      *float64 `json:"max_budget,omitempty"`
	BudgetDuration string   `json:"budget_duration,omitempty"`
}

// TeamRecord is one team as stored in BucketTeams under its id.
type TeamRecord struct {
	TeamID             string              `json:"team_id"`
	TeamAlias          string              `json:"team_alias,omitempty"`
	OrganizationID     string              `json:"organization_id,omitempty"` // its organization (orgs.go), if any
	MCPServers         []string            `json:"mcp_servers,omitempty"`
	MCPAccessGroups    []string            `json:"mcp_access_groups,omitempty"`
	MCPToolPermissions map[string][]string `json:"mcp_tool_permissions,omitempty"`
	Models             []string            `json:"models,omitempty"`
	Agents             []string            `json:"agents,omitempty"`
	AgentAccessGroups  []string            `json:"agent_access_groups,omitempty"`
	RPMLimit           int                 `json:"rpm_limit,omitempty"`
	LLMLimits
	Blocked   bool           `json:"blocked,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
	CreatedAt time.Time      `json:"created_at"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// Permissions is what a caller may use, as auth computed it (the one rule lives
// in the auth service). AllServers is true for the master key and for keys
// that neither they, their team nor its organization restrict; otherwise a
// server is permitted when Servers names it or it is in one of Groups (access
// groups), and, when Also is set, Also permits it too (the team's limit, kept
// apart when access groups make the key's and the team's lists impossible to
// intersect by name), and, when Outer is set, Outer permits it too (the
// organization's limit, kept apart for the same reason).
// Tools, per server, lists the only tools permitted there; a server absent
// from Tools has no per-key tool restriction.
type Permissions struct {
	AllServers bool                `json:"all_servers"`
	Servers    []string            `json:"servers,omitempty"`
	Groups     []string            `json:"groups,omitempty"`
	Also       *ServerScope        `json:"also,omitempty"`
	Outer      *ServerScope        `json:"outer,omitempty"`
	Tools      map[string][]string `json:"tools,omitempty"`
	// AllModels: every model group; else a group must be admitted by each
	// level of Models (the key's list, its team's, its organization's;
	// llm.go AllowsModel).
	AllModels bool       `json:"all_models,omitempty"`
	Models    [][]string `json:"models,omitempty"`
	// AllAgents: every A2A agent; else an agent must be admitted by each
	// level of Agents (the key's limit, its team's, its organization's;
	// a2a.go AllowsAgent).
	AllAgents bool         `json:"all_agents,omitempty"`
	Agents    []AgentScope `json:"agents,omitempty"`
}

// ServerScope is one level's limit on servers: those it names and those in
// its access groups.
type ServerScope struct {
	Servers []string `json:"servers,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

// Admits reports whether the scope lets s through.
func (c ServerScope) Admits(s ServerSpec) bool {
	if slices.Contains(c.Servers, s.Name) {
		return true
	}
	for _, g := range s.AccessGroups {
		if slices.Contains(c.Groups, g) {
			return true
		}
	}
	return false
}

// AllowsServer reports whether the caller may use s.
func (p Permissions) AllowsServer(s ServerSpec) bool {
	if p.AllServers {
		return true
	}
	if !(ServerScope{Servers: p.Servers, Groups: p.Groups}).Admits(s) {
		return false
	}
	return (p.Also == nil || p.Also.Admits(s)) && (p.Outer == nil || p.Outer.Admits(s))
}

// AllowsTool reports whether the caller may list and call tool on server.
func (p Permissions) AllowsTool(server, tool string) bool {
	tools, limited := p.Tools[server]
	return !limited || slices.Contains(tools, tool)
}

// AllowAll is the permission of the master key and of open mode: every
// server, tool, model and agent.
func AllowAll() Permissions { return Permissions{AllServers: true, AllModels: true, AllAgents: true} }

// HeaderPermissions carries Permissions in the envelope as JSON.
const HeaderPermissions = "Mcpbus-Caller-Permissions"

// EncodePermissions is the header value for p ("" when p allows everything).
func EncodePermissions(p Permissions) string {
	if p.AllServers && len(p.Tools) == 0 && p.AllModels && p.AllAgents {
		return ""
	}
	b, _ := json.Marshal(p)
	return string(b)
}

// DecodePermissions reads a header value. An empty value allows everything
// (the master key, open mode); a malformed one allows nothing (fail closed).
func DecodePermissions(s string) Permissions {
	if strings.TrimSpace(s) == "" {
		return AllowAll()
	}
	var p Permissions
	if json.Unmarshal([]byte(s), &p) != nil {
		return Permissions{}
	}
	return p
}
