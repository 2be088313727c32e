package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// StreamUsage is the JetStream stream of usage events; dashboards and `mcpbus
// usage` read it as independent consumers.
const StreamUsage = "MCPBUS_USAGE"

// usageToken is one part of a usage subject (UsageSubject, UsageFilter in
// subjects.go).
func usageToken(s, empty string) string {
	if s == "" {
		return empty
	}
	if ValidToken(s) {
		return s
	}
	// A tool name comes from the caller. Characters a token cannot hold
	// (dots, wildcards, spaces, other scripts) become '_'; a name longer than
	// MaxTokenLen is cut and given a hash of the whole name, so the subject
	// stays bounded and distinct long names stay distinct.
	long := len(s) > MaxTokenLen
	n := len(s)
	if long {
		n = 48
	}
	b := make([]byte, 0, n+9)
	for i := 0; i < n; i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			c = '_'
		}
		b = append(b, c)
	}
	if long {
		sum := sha256.Sum256([]byte(s))
		b = append(b, '-')
		b = hex.AppendEncode(b, sum[:4])
	}
	return string(b)
}

// UsageEvent is one MCP call as recorded for dashboards and billing. It never
// holds the caller's key: KeyID is the key's token (its hash) and KeyAlias its
// alias.
type UsageEvent struct {
	Time       time.Time `json:"time"`
	RequestID  string    `json:"request_id"` // also the JetStream dedup id
	KeyID      string    `json:"key_id,omitempty"`
	KeyAlias   string    `json:"key_alias,omitempty"`
	Team       string    `json:"team_id,omitempty"`
	OrgID      string    `json:"organization_id,omitempty"` // the team's organization
	Server     string    `json:"server"`
	Tool       string    `json:"tool,omitempty"` // tools/call only
	Method     string    `json:"method"`
	Status     string    `json:"status"` // "ok", "error" (JSON-RPC error from upstream) or "failed" (gateway error)
	DurationMS float64   `json:"duration_ms"`
	BytesIn    int       `json:"bytes_in"`
	BytesOut   int       `json:"bytes_out"`
	IPClass    IPClass   `json:"ip_class"`
	ErrorCode  string    `json:"error_code,omitempty"` // catalog code, or the upstream's JSON-RPC code
	Cost       float64   `json:"cost,omitempty"`       // from the tool's cost_per_query, or an LLM answer's tokens
	// An LLM call's (Server LLMUsageServer, Tool the model group): the
	// deployment that answered and the tokens it took.
	Deployment       string `json:"deployment,omitempty"`
	PromptTokens     int    `json:"prompt_tokens,omitempty"`
	CompletionTokens int    `json:"completion_tokens,omitempty"`
	// Kind is what was called: "" for an MCP server's, UsageKindAgent for
	// an A2A agent's (Server is then the agent, Method its A2A method).
	Kind string `json:"kind,omitempty"`
}

// UsageKindAgent is the Kind of an A2A agent call's event.
const UsageKindAgent = "agent"

// AgentUsageSubject is where the event of one agent call is published:
// mcpbus.v1.usage.a2a.<team>.<agent>.<method>. It has one token more than
// an MCP call's (UsageSubject), so no MCP filter matches it and a tool
// worker's permissions cannot publish one, while mcpbus.v1.usage.> (the
// stream, `mcpbus usage`) holds both.
func AgentUsageSubject(team, agent, method string) string {
	return Root + ".usage.a2a." + usageToken(team, "_noteam") + "." + usageToken(agent, "_none") + "." + usageToken(method, "_none")
}

// AgentUsageFilter is the subject filter for agent usage events of one
// team, agent and method; an empty part matches any.
func AgentUsageFilter(team, agent, method string) string {
	part := func(s string) string {
		if s == "" {
			return "*"
		}
		return usageToken(s, "")
	}
	return Root + ".usage.a2a." + part(team) + "." + part(agent) + "." + part(method)
}
