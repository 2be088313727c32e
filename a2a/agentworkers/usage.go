package agentworkers

import (
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// Usage events of agent calls (docs/USAGE.md): one per call that reached
// the agent, published by internal/usagepub to bus.AgentUsageSubject.

// usageEvent is the call's event, ended at end.
func (c *call) usageEvent(start, end time.Time) bus.UsageEvent {
	status := c.status
	if status == "" {
		status = "failed"
	}
	return bus.UsageEvent{
		Time: start.UTC(), RequestID: c.env.RequestID,
		KeyID: c.env.Caller.KeyID, KeyAlias: c.env.Caller.Alias, Team: c.env.Caller.Team, OrgID: c.env.Caller.Org,
		Kind: bus.UsageKindAgent, Server: c.a.c.Name, Method: c.method, Status: status,
		DurationMS: float64(end.Sub(start).Microseconds()) / 1000,
		BytesIn:    c.bytesIn, BytesOut: c.bytesOut, IPClass: c.env.IPClass, ErrorCode: c.errCode,
	}
}
