package router

import (
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The router's part of the audit stream (docs/AUDIT.md): the tools/call it
// refuses before any worker sees it because the caller may not use the
// server it named (the key's or team's permissions, or an internal-only
// server an external caller named). The workers record every call they
// take, and their own refusals; these are the refusals they never see.
// A refusal is rare and off the path of calls that pass: the record is
// built and published (core NATS, like pin events) where the refusal is
// answered. Its Nats-Msg-Id is the request id, so a call a worker refused
// first and the router then refused again is recorded once.

// maxAuditTool bounds the tool name a refusal's record keeps: it is the
// caller's, and no tool was looked up.
const maxAuditTool = 256

// auditRefusal records msg (a tools/call) refused with e, when the audit
// stream is on and e is a refusal of a server that exists.
func (r *Router) auditRefusal(env bus.Envelope, msg *bus.Message, e *bus.Error) {
	if !r.o.Audit || msg.Method != bus.MethodToolsCall || (e.Kind != bus.ErrNotPermitted && e.Kind != bus.ErrUnknownServer) {
		return
	}
	server := r.refusedServer(env)
	if server == "" {
		return
	}
	var params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	_ = json.Unmarshal(msg.Params, &params) // params that are no object name no tool
	rec := bus.AuditRecord{
		Time:      time.Now().UTC(),
		RequestID: env.RequestID,
		KeyID:     env.Caller.KeyID,
		KeyAlias:  env.Caller.Alias,
		User:      env.Caller.User,
		Team:      env.Caller.Team,
		OrgID:     env.Caller.Org,
		IPClass:   env.IPClass,
		Server:    server,
		Method:    msg.Method,
		Tool:      bus.Shorten(params.Name, maxAuditTool),
		Outcome:   bus.AuditDenied,
		ErrorCode: e.Kind.Code,
	}
	rec.SetArguments(r.o.AuditArguments, params.Arguments)
	data, err := json.Marshal(rec)
	if err == nil {
		err = rec.Validate()
	}
	if err == nil {
		m := &nats.Msg{Subject: bus.AuditSubject(server, bus.AuditDenied), Data: data, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, rec.RequestID)
		err = r.nc.PublishMsg(m)
	}
	if err != nil {
		r.log.Warn("router: audit record of a refused call not published", "server", server, "err", err)
	}
}

// refusedServer is the first server env names that exists and the caller
// may not use; "" when it names none (a server that does not exist is
// nobody's to audit, and a request naming no server was refused for having
// no server at all).
func (r *Router) refusedServer(env bus.Envelope) string {
	for _, n := range env.Servers {
		if s, ok := r.cache.Get(n); ok && !bus.Usable(s, env) {
			return s.Name
		}
	}
	return ""
}
