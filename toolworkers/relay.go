package toolworkers

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
)

// callRelay carries what an upstream sends on one call's stream, besides the
// response, to the client that made the call: progress (its token mapped back
// to the caller's), notifications/message (filtered by the session's log
// level) and server-to-client requests (server_requests.go), all through the
// call's stream subject (Envelope.Stream).
//
// Relays are pooled: a tools/call from a client whose ingress gave it a stream
// costs no allocation for its relay. A relay is held by its call and by every
// server-to-client request still being relayed for it; the last release puts
// it back.
type callRelay struct {
	w    *Worker
	refs atomic.Int32

	stream    string // the call's stream subject; "" when the client has none
	fallback  string // where requests go without a stream: a private session's subject
	session   string // downstream session id
	keyID     string
	requestID string
	level     string // the session's log level, "" if it set none
	// modern: a stateless-era caller, which wants no notifications/message
	// without a level and can take no server-to-client request.
	modern bool
	caps   json.RawMessage // the client's capabilities
	token  json.RawMessage // the caller's progress token; nil if it asked for none
	// secrets, set by the link's upstream (scrub.go), are the values
	// scrubbed from what is relayed; nil: none.
	secrets *credential.Scrubber
	// park, for the relay of a parked call (park.go), takes what the
	// upstream sends: its requests become input_required for the caller,
	// its notifications go to the round in progress.
	park *park
}

var _ upstream.Relay = (*callRelay)(nil)

var relayPool = sync.Pool{New: func() any { return new(callRelay) }}

// newRelay returns a relay for one call of the client env describes; token is
// the caller's progress token if the leg's params carry a rewritten one.
func (w *Worker) newRelay(env *bus.Envelope, token json.RawMessage) *callRelay {
	r := relayPool.Get().(*callRelay)
	r.w = w
	r.stream, r.session, r.keyID, r.requestID = env.Stream, env.Session, env.Caller.KeyID, env.RequestID
	r.level, r.caps, r.token, r.modern = env.LogLevel, env.ClientCapabilities, token, env.Modern()
	r.refs.Store(1)
	return r
}

// Hold keeps r alive past its call (a server-to-client request in flight).
func (r *callRelay) Hold() {
	if r != nil {
		r.refs.Add(1)
	}
}

// Release drops one hold; the last one returns a pooled relay.
func (r *callRelay) Release() {
	if r == nil || r.refs.Add(-1) != 0 || r.w == nil {
		return
	}
	*r = callRelay{}
	relayPool.Put(r)
}

// Notify relays a notification that arrived on the call's stream.
func (r *callRelay) Notify(method string, params json.RawMessage) {
	if r == nil {
		return
	}
	params = r.secrets.JSON(params)
	if r.park != nil {
		r.park.notify(method, params)
		return
	}
	switch method {
	case "notifications/progress":
		if r.token == nil {
			return // the caller asked for no progress; nothing to map it back to
		}
		params = restoreProgressToken(params, r.token)
	case "notifications/message":
		if r.modern && r.level == "" || !levelAllows(r.level, messageLevel(params)) {
			return
		}
	default:
		return
	}
	subject := r.stream
	if subject == "" {
		subject = r.fallback
	}
	if subject == "" {
		return
	}
	if err := r.w.nc.PublishMsg(r.w.toClient(subject, bus.Notification(method, params))); err != nil {
		r.w.log.Debug("relay notification failed", "request_id", r.requestID, "err", err)
	}
}

// Request relays a server-to-client request that arrived on the call's stream
// to the client that made the call, and returns the answer for the upstream.
func (r *callRelay) Request(ctx context.Context, m *bus.Message) []byte {
	if r != nil {
		m = r.secrets.Message(m)
	}
	if r == nil || r.w == nil {
		return upstream.Refusal(m.ID, upstream.CodeMethodNotFound, "the client cannot receive "+m.Method+": its request has no stream for it (the client did not accept text/event-stream)")
	}
	if r.park != nil {
		return r.park.ask(ctx, m) // park.go: input_required for the caller
	}
	if r.modern {
		return upstream.Refusal(m.ID, upstream.CodeMethodNotFound, "the client cannot receive "+m.Method+": it speaks MCP "+bus.FirstModernVersion+", which has no server-to-client requests")
	}
	subject := r.stream
	if subject == "" {
		subject = r.fallback
	}
	return r.w.relayServerRequest(ctx, s2cTarget{
		subject: subject, session: r.session, keyID: r.keyID, caps: r.caps, requestID: r.requestID,
		noStream: "its request has no stream for it (the client did not accept text/event-stream)",
	}, m)
}

// messageLevel reads params.level of a notifications/message.
func messageLevel(params json.RawMessage) string {
	i := bytes.Index(params, []byte(`"level"`))
	if i < 0 {
		return ""
	}
	var p struct {
		Level string `json:"level"`
	}
	if json.Unmarshal(params, &p) != nil {
		return ""
	}
	return p.Level
}
