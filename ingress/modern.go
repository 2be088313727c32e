package ingress

import (
	"net/http"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// The stateless era (MCP 2026-07-28) on the MCP endpoint. A request of that
// era (bus.Modern) carries what a session held: its protocol version, its
// client's capabilities and log level travel in params._meta, checked here
// and put in the envelope, so any ingress replica answers any request and
// no session is looked up or opened. What the answer becomes is
// bus.ModernAnswer's; a client that goes away cancels its call (answer.go).

// modern reports whether this ingress serves r (with its message m, if
// read) as a stateless-era request: the protocol is on and the request
// is of that era (bus.Modern).
func (g *Ingress) modern(r *http.Request, m *bus.Message) bool {
	return g.o.Stateless && bus.Modern(r.Header, m)
}

// admitModern checks a stateless-era message after its key: a response is
// refused (such a client sends none), a method the era removed is unknown
// (404), the standard headers must match the body
// (bus.CheckStandardHeaders), which stays what the gateway reads, and the
// _meta triple must be there (bus.ReadModernMeta).
func admitModern(r *http.Request, req *request) *bus.Error {
	m := req.msg
	if m.IsResponse() {
		return bus.Errorf(bus.ErrInvalidRequest, "a %s client sends no JSON-RPC responses: there are no server-to-client requests to answer", bus.FirstModernVersion)
	}
	if !m.IsRequest() {
		return nil // a notification: accepted and dropped (mcp.go)
	}
	if bus.RemovedInModern(m.Method) {
		return bus.Errorf(bus.ErrMethodNotFound, "method %q does not exist in MCP %s (use server/discover, subscriptions/listen and _meta instead)", m.Method, bus.FirstModernVersion)
	}
	// Headers first, as go-sdk does: a header that disagrees with the body
	// is -32020 even when the body's version is one mcpbus does not speak.
	if err := bus.CheckStandardHeaders(r.Header, m); err != nil {
		return bus.Errorf(bus.ErrHeaderMismatch, "%v", err)
	}
	meta, e := bus.ReadModernMeta(m.Params)
	if e != nil {
		return e
	}
	req.env.ProtocolVersion = meta.Version
	req.env.ClientCapabilities = envelopeCapabilities(meta.Capabilities)
	req.env.LogLevel = meta.LogLevel
	if m.Method == bus.MethodToolsCall {
		if e := paramHeaders(r.Header, &req.env); e != nil {
			return e
		}
	}
	return req.env.Validate()
}

// paramHeaders puts a tools/call's Mcp-Param-* headers in the envelope for
// the worker, which knows the tool's annotations, to check against the
// body (bounded and checked for characters by Envelope.Validate).
func paramHeaders(h http.Header, env *bus.Envelope) *bus.Error {
	for k, v := range h {
		name, ok := strings.CutPrefix(k, bus.HeaderParamPrefix)
		if !ok || len(v) == 0 {
			continue
		}
		if len(v) > 1 {
			return bus.Errorf(bus.ErrHeaderMismatch, "header %s%s given %d times", bus.HeaderParamPrefix, bus.Shorten(name, 64), len(v))
		}
		if env.ParamHeaders == nil {
			env.ParamHeaders = map[string]string{}
		}
		if len(env.ParamHeaders) >= bus.MaxParamHeaders {
			return bus.Errorf(bus.ErrHeaderMismatch, "more than %d Mcp-Param-* headers", bus.MaxParamHeaders)
		}
		env.ParamHeaders[name] = v[0]
	}
	return nil
}

// cancelLeft cancels the call of a stateless-era request whose client went
// away before its answer: the workers running it stop it upstream (they
// know it by its envelope's request id, unique to this POST).
func (g *Ingress) cancelLeft(req *request) {
	if err := g.nc.Publish(bus.SubjectCancel, []byte(req.env.RequestID)); err != nil {
		g.log.Warn("could not cancel the call of a client that went away", "request_id", req.env.RequestID, "err", err)
		return
	}
	g.log.Debug("the client went away: its call is cancelled", "request_id", req.env.RequestID)
}
