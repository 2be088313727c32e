package llmrouter

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Admission, spend and usage: before a request is routed, auth admits it
// against the key's and team's LLM limits (bus/llm_limits.go); after the
// answer, auth counts its tokens and cost, and a usage event records the
// call in the usage stream beside the MCP calls' (server "_llm", tool the
// model group), so `mcpbus usage` and dashboards show both.

// authWait bounds an admission or spend request to auth.
const authWait = 5 * time.Second

// limited reports whether auth has limits to check for the caller: the
// master key and open mode have none.
func limited(env bus.Envelope) bool {
	return !env.Caller.Admin && env.Caller.KeyID != "anonymous" && env.Caller.KeyID != ""
}

// admit asks auth whether the caller may send a request for model now.
func (r *Router) admit(ctx context.Context, env bus.Envelope, model string) *bus.Error {
	if !limited(env) {
		return nil
	}
	body, _ := json.Marshal(bus.LLMAdmitRequest{Model: model})
	ctx, cancel := context.WithTimeout(ctx, authWait)
	defer cancel()
	resp, err := r.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: bus.SubjectLLMAdmit, Data: body, Header: env.Header()})
	if err != nil {
		return bus.RequestError("auth (LLM limits)", err)
	}
	return bus.ReplyError(resp)
}

// record counts an answer's spend with auth and records its usage event.
// It runs after the answer went out.
func (r *Router) record(env bus.Envelope, model, op string, start time.Time, bytesIn int, resp *nats.Msg, fail *bus.Error) {
	ev := bus.UsageEvent{Time: start.UTC(), RequestID: env.RequestID, KeyID: env.Caller.KeyID, KeyAlias: env.Caller.Alias,
		Team: env.Caller.Team, OrgID: env.Caller.Org, Server: bus.LLMUsageServer, Tool: model, Method: usageMethod(op), Status: "ok", BytesIn: bytesIn,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000, IPClass: env.IPClass}
	if fail != nil {
		ev.Status, ev.ErrorCode = "failed", fail.Kind.Code
	}
	if resp != nil {
		ev.BytesOut = len(resp.Data)
		ev.Deployment = resp.Header.Get(bus.HeaderLLMDeployment)
		if p, c, ok := bus.ParseLLMUsage(resp.Header.Get(bus.HeaderLLMUsage)); ok {
			ev.PromptTokens, ev.CompletionTokens = p, c
			if d, ok := r.byID[ev.Deployment]; ok {
				ev.Cost = cost(d, p, c)
			}
		}
	}
	if fail == nil && limited(env) && (ev.PromptTokens+ev.CompletionTokens > 0 || ev.Cost > 0) {
		body, _ := json.Marshal(bus.LLMSpendRequest{Model: model, PromptTokens: ev.PromptTokens, CompletionTokens: ev.CompletionTokens, Cost: ev.Cost})
		resp, err := r.nc.RequestMsg(&nats.Msg{Subject: bus.SubjectLLMSpend, Data: body, Header: env.Header()}, authWait)
		if err == nil {
			if e := bus.ReplyError(resp); e != nil {
				err = e
			}
		}
		if err != nil {
			r.log.Warn("an LLM answer's spend was not counted against the key's limits", "model", model, "request_id", env.RequestID, "err", err)
		}
	}
	r.publishUsage(ev)
}

// usageMethod is the method of an op's usage events.
func usageMethod(op string) string {
	switch op {
	case bus.LLMOpEmbeddings:
		return "embeddings"
	case opResponses:
		return "responses"
	}
	return bus.LLMUsageMethod
}

// publishUsage puts ev on the usage stream without waiting for it
// (internal/usagepub).
func (r *Router) publishUsage(ev bus.UsageEvent) { r.usage.Enqueue(ev) }
