package bus

import (
	"strings"
	"time"
)

// StreamUsage is the JetStream stream of usage events; dashboards and `mcpbus
// usage` read it as independent consumers.
const StreamUsage = "MCPBUS_USAGE"

// UsageSubject is where the event of one MCP call is published:
// mcpbus.v1.usage.<team>.<server>.<tool>. Parts that are empty or not valid
// subject tokens are replaced so the subject is always well formed.
func UsageSubject(team, server, tool string) string {
	return Root + ".usage." + usageToken(team, "_noteam") + "." + usageToken(server, "_none") + "." + usageToken(tool, "_none")
}

// SubjectUsageAll matches every usage event.
const SubjectUsageAll = Root + ".usage.>"

func usageToken(s, empty string) string {
	if s == "" {
		return empty
	}
	return strings.Map(func(r rune) rune {
		switch r {
		case '.', '*', '>', ' ', '\t', '\r', '\n':
			return '_'
		}
		return r
	}, s)
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
	Server     string    `json:"server"`
	Tool       string    `json:"tool,omitempty"` // tools/call only
	Method     string    `json:"method"`
	Status     string    `json:"status"` // "ok", "error" (JSON-RPC error from upstream) or "failed" (gateway error)
	DurationMS float64   `json:"duration_ms"`
	BytesIn    int       `json:"bytes_in"`
	BytesOut   int       `json:"bytes_out"`
	IPClass    IPClass   `json:"ip_class"`
	ErrorCode  string    `json:"error_code,omitempty"` // catalog code, or the upstream's JSON-RPC code
	Cost       float64   `json:"cost,omitempty"`       // from the tool's cost_per_query
}
