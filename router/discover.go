package router

import (
	"context"
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
)

// server/discover (MCP 2026-07-28): what initialize told a session's
// client, asked by a stateless-era client whenever it likes. mcpbus bridges
// every revision it speaks to every upstream, so it lists all of them
// (bus.AllProtocolVersions), not an intersection of its upstreams'. The
// capabilities are the server's, or the aggregation's union, as for
// initialize, with what the gateway cannot yet give a stateless-era client
// taken out (modernCapabilities).

// discoverResult is a DiscoverResult, which is a cacheable result.
type discoverResult struct {
	ResultType        string          `json:"resultType"`
	SupportedVersions []string        `json:"supportedVersions"`
	Capabilities      json.RawMessage `json:"capabilities"`
	Instructions      string          `json:"instructions,omitempty"`
	TTLMs             int             `json:"ttlMs"`
	CacheScope        string          `json:"cacheScope"`
	Meta              map[string]any  `json:"_meta"`
}

// discover answers server/discover for one server.
func (r *Router) discover(ctx context.Context, env bus.Envelope, msg *bus.Message, s bus.ServerSpec) ([]byte, *bus.Error) {
	m := r.infoOne(ctx, env, s, msg.Method)
	m.instructions = withSearchNote(env, m.instructions)
	return discovered(msg, m), nil
}

// discoverAll answers server/discover for an aggregation.
func (r *Router) discoverAll(ctx context.Context, a *agg, msg *bus.Message) ([]byte, *bus.Error) {
	m := r.infoAll(ctx, a, msg.Method)
	m.instructions = withSearchNote(a.env, m.instructions)
	return discovered(msg, m), nil
}

// discovered is the DiscoverResult for m. It is not to be reused (ttlMs 0)
// and private: what a caller sees depends on its key and address.
func discovered(msg *bus.Message, m mergedInfo) []byte {
	out, _ := json.Marshal(discoverResult{
		ResultType:        "complete",
		SupportedVersions: bus.AllProtocolVersions(),
		Capabilities:      m.modernCaps(), // tasks.go
		Instructions:      m.instructions,
		CacheScope:        "private",
		Meta:              map[string]any{bus.MetaServerInfo: m.server},
	})
	return bus.ResultResponse(msg.ID, out)
}

// modernCapabilities are an upstream's capabilities as a stateless-era
// client may use them through mcpbus: list changes and resource
// subscriptions come on the ingress's subscriptions/listen
// (ingress/listen.go, listen_resources.go), so listChanged and subscribe
// stay (a worker leaves subscribe out of a stateless-era upstream's info,
// which it cannot bridge yet); tasks became an extension the gateway does
// not bridge, so "tasks" is left out. Everything else (tools, prompts,
// resources, logging, completions, experimental, extensions) passes as it
// is.
func modernCapabilities(caps json.RawMessage) json.RawMessage {
	var m map[string]json.RawMessage
	if json.Unmarshal(caps, &m) != nil || m == nil {
		return json.RawMessage(`{}`)
	}
	delete(m, "tasks")
	out, _ := json.Marshal(m)
	return out
}
