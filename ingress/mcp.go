package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/oauth"
	"github.com/nats-io/nats.go"
)

// endpoint checks what every MCP endpoint (base, or base/{server}) checks
// first: the path and the Origin/Host rules. It returns the server the path
// names ("" for none), or answers the error itself.
func (g *Ingress) endpoint(w http.ResponseWriter, r *http.Request, base, what string) (string, bool) {
	pathServer := strings.Trim(strings.TrimPrefix(r.URL.Path, base), "/")
	if strings.Contains(pathServer, "/") {
		writeError(w, nil, bus.Errorf(bus.ErrUnknownServer, "unknown %s endpoint %q: use %s or %s/{server}", what, r.URL.Path, base, base))
		return "", false
	}
	if e := g.origin.check(r); e != nil {
		writeError(w, nil, e)
		return "", false
	}
	return pathServer, true
}

// serveMCP is the Streamable HTTP endpoint: /mcp and /mcp/{server}.
func (g *Ingress) serveMCP(w http.ResponseWriter, r *http.Request) {
	pathServer, ok := g.endpoint(w, r, "/mcp", "MCP")
	if !ok {
		return
	}
	if r.Method != http.MethodPost && g.modern(r, nil) {
		// The stateless era has no GET stream and no session to end.
		w.Header().Set("Allow", http.MethodPost)
		writeErrorFor(w, nil, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed for MCP %s: POST each request (subscriptions/listen replaces the GET stream; there is no session to DELETE)", r.Method, bus.FirstModernVersion), true)
		return
	}
	switch r.Method {
	case http.MethodPost:
		g.post(w, r, pathServer)
	case http.MethodGet:
		g.openStream(w, r, pathServer)
	case http.MethodDelete:
		g.delete(w, r)
	default:
		writeError(w, nil, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on the MCP endpoint: use POST, GET (the server-to-client stream) or DELETE (to end a session)", r.Method))
	}
}

// request is one POSTed message being handled.
type request struct {
	msg  *bus.Message
	body []byte
	env  bus.Envelope
	sess *session
	// sse: the client accepts an event stream as the answer.
	sse bool
	// modern: a stateless-era (MCP 2026-07-28) request (modern.go).
	modern bool
}

func (g *Ingress) post(w http.ResponseWriter, r *http.Request, pathServer string) {
	req, e := g.admit(w, r, pathServer)
	if e != nil {
		var id json.RawMessage
		var msg *bus.Message
		if req != nil && req.msg != nil {
			id, msg = req.msg.ID, req.msg
		}
		writeErrorFor(w, id, e, g.modern(r, msg))
		return
	}
	if req.modern && req.msg.Method == bus.MethodSubscriptionsListen {
		g.listen(w, r, req) // listen.go
		return
	}
	if req.modern && !req.msg.IsRequest() {
		// The stateless era defines no client notifications over HTTP
		// (closing a request's stream cancels it): nothing to pass on.
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if !req.msg.IsRequest() {
		// Notifications and responses are accepted at once (202, no body).
		if e := g.publish(r.Context(), req); e != nil {
			writeError(w, nil, e)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	g.answer(w, r, req) // answer.go
}

// publish hands a notification or a response to the router.
func (g *Ingress) publish(ctx context.Context, req *request) *bus.Error {
	m := &nats.Msg{Subject: bus.SubjectRouterRPC, Data: req.body, Header: req.env.Header()}
	injectTrace(ctx, m.Header)
	if err := g.nc.PublishMsg(m); err != nil {
		return bus.RequestError("router", err)
	}
	return nil
}

// admit checks everything that does not need the router: media types, body,
// message shape, the caller's key, the session and the protocol version.
func (g *Ingress) admit(w http.ResponseWriter, r *http.Request, pathServer string) (*request, *bus.Error) {
	sse, e := checkMedia(r)
	if e != nil {
		return nil, e
	}
	// The key before the body: a caller without one costs no read.
	id, e := g.verify(r)
	if e != nil {
		return nil, e
	}
	req, e := g.readMessage(w, r, sse)
	if e != nil {
		return req, e
	}
	req.modern = g.modern(r, req.msg)
	if e := g.identify(r, req, id, selection(pathServer, r)); e != nil {
		return req, e
	}
	if req.modern {
		return req, admitModern(r, req) // modern.go: no session
	}
	if req.msg.Method == bus.MethodInitialize {
		if e := g.mayOpenSession(id); e != nil {
			return req, e
		}
		req.env.ClientCapabilities = envelopeCapabilities(initCapabilities(req.msg.Params))
		return req, req.env.Validate()
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		return req, bus.Errorf(bus.ErrBadRequest, "Mcp-Session-Id header is required after initialize")
	}
	sess, e := g.findSession(r.Context(), sid, req.env, req.env.Servers)
	if e != nil {
		return req, e
	}
	req.attach(sess)
	if e := req.checkSessionChange(); e != nil {
		return req, e
	}
	return req, req.env.Validate()
}

// mayOpenSession refuses a new session to a virtual key that holds
// bus.MaxSessionsPerKey already: sessions live in a shared store, which one
// key must not be able to fill for everyone (the master key and open mode
// are not limited).
func (g *Ingress) mayOpenSession(id bus.Identity) *bus.Error {
	if id.Admin || id.KeyID == "anonymous" {
		return nil
	}
	if n := g.sessions.countFor(id.KeyID); n >= bus.MaxSessionsPerKey {
		return bus.Errorf(bus.ErrRateLimited, "%s holds %d open sessions, the most one key may: end some (DELETE) or let them expire", id.Who(), n)
	}
	return nil
}

// checkSessionChange bounds what a message may add to its session's record
// (a resource subscription), before it reaches the upstream.
func (req *request) checkSessionChange() *bus.Error {
	if req.msg.Method != bus.MethodResourcesSubscribe {
		return nil
	}
	uri, _, _ := bus.StringField(req.msg.Params, "uri")
	if len(uri) > bus.MaxURILen {
		return bus.Errorf(bus.ErrInvalidParams, "resources/subscribe: params.uri is longer than %d bytes", bus.MaxURILen)
	}
	if subs := req.sess.rec.Subscriptions; len(subs) >= bus.MaxSubscriptions && !slices.Contains(subs, uri) {
		return bus.Errorf(bus.ErrInvalidParams, "resources/subscribe: this session has %d subscriptions, the most one may hold; unsubscribe first", len(subs))
	}
	return nil
}

// checkMedia checks the media types of a POSTed message; sse reports whether
// the client accepts an event stream as the answer.
func checkMedia(r *http.Request) (sse bool, e *bus.Error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return false, bus.Errorf(bus.ErrUnsupportedMedia, "Content-Type must be application/json, got %q", clip(ct))
		}
	}
	sse = acceptsSSE(r)
	if !sse && !acceptsJSON(r) {
		return false, bus.Errorf(bus.ErrNotAcceptable, "Accept must allow application/json or text/event-stream")
	}
	return sse, nil
}

// readMessage reads and parses the one message (its key already checked).
func (g *Ingress) readMessage(w http.ResponseWriter, r *http.Request, sse bool) (*request, *bus.Error) {
	body, e := g.readBody(w, r, g.o.MaxBodyBytes)
	if e != nil {
		return nil, e
	}
	msg, perr := bus.ParseMessage(body)
	if perr != nil {
		return nil, perr
	}
	req := &request{msg: msg, body: body, sse: sse}
	noteRequest(r, req)
	return req, nil
}

// identify builds the envelope of the caller id (verify's answer).
func (g *Ingress) identify(r *http.Request, req *request, id bus.Identity, servers []string) *bus.Error {
	req.env = bus.Envelope{
		RequestID: requestID(r),
		Caller:    id,
		IPClass:   g.ipClass(r),
		Servers:   servers,
		Forward:   g.forwardHeaders(r, callerKey(r)),
	}
	if e := bus.CheckSelection(servers, "the server selection"); e != nil {
		return e
	}
	// Tool search mode: the key's setting, unless the request says
	// (bus/toolsearch.go; "off" lets a client opt out).
	on, set, e := bus.ToolSearchRequested(r.Header)
	if e != nil {
		return e
	}
	req.env.ToolSearch = on || (!set && id.ToolSearch)
	if req.modern {
		return nil // its version is in _meta, checked there (modern.go)
	}
	version := r.Header.Get("Mcp-Protocol-Version")
	if version != "" && !bus.SupportedProtocolVersion(version) {
		return bus.Errorf(bus.ErrBadRequest, "unsupported MCP-Protocol-Version %q (supported: %s)", version, strings.Join(bus.ProtocolVersions, ", "))
	}
	req.env.ProtocolVersion = version
	return nil
}

// findSession returns the caller's session sid. A session belongs to the key
// that opened it, to the servers it was opened on (a session id is no key to
// another server's endpoint) and to the IP class it was opened from (a
// session opened from an internal address is no way in from outside). caller
// is the envelope of the message asking: its key and IP class.
func (g *Ingress) findSession(ctx context.Context, sid string, caller bus.Envelope, servers []string) (*session, *bus.Error) {
	if e := bus.CheckSessionID(sid, "Mcp-Session-Id"); e != nil {
		return nil, e
	}
	sess, err := g.sessions.get(ctx, sid, caller.Caller.KeyID)
	if err != nil {
		g.log.Error("session store unavailable", "err", err)
		return nil, bus.Errorf(bus.ErrServiceUnavailable, "the session store is unavailable; try again")
	}
	if sess == nil {
		return nil, bus.Errorf(bus.ErrSessionNotFound, "session not found: it ended or expired; send initialize again")
	}
	if len(servers) > 0 && !slices.Equal(servers, sess.rec.Servers) {
		return nil, bus.Errorf(bus.ErrSessionNotFound, "session not found for this server: it was opened on another one; send initialize again")
	}
	if sess.rec.IPClass != caller.IPClass {
		return nil, bus.Errorf(bus.ErrSessionNotFound, "session not found for a caller at an %s address: it was opened from another network; send initialize again", caller.IPClass)
	}
	return sess, nil
}

// attach puts the session's state in the envelope.
func (req *request) attach(sess *session) {
	req.sess = sess
	req.env.Session = sess.rec.ID
	if req.env.ProtocolVersion == "" {
		req.env.ProtocolVersion = sess.rec.Version
	}
	req.env.Servers = sess.rec.Servers
	req.env.ClientCapabilities = envelopeCapabilities(sess.rec.Capabilities)
	req.env.LogLevel = sess.rec.LogLevel
}

// envelopeCapabilities is what of the client's capabilities the envelope
// carries: all of them, except that an empty object (a worker then declares
// nothing, as with none) is left out to spare every hop a header.
func envelopeCapabilities(caps json.RawMessage) json.RawMessage {
	if string(caps) == "{}" {
		return nil
	}
	return caps
}

// verify asks auth who holds the caller's key.
func (g *Ingress) verify(r *http.Request) (bus.Identity, *bus.Error) {
	if h := keyProblem(r); h != "" {
		return bus.Identity{}, bus.Errorf(bus.ErrUnauthorized, "unauthorized: the key in %s holds spaces or control characters; send the key alone", h)
	}
	var hash string
	if key := callerKey(r); key != "" {
		if g.oauth != nil && oauth.LooksLikeJWT(key) {
			return g.verifyToken(r, key, false) // oauth.go
		}
		hash = bus.HashKey(key)
		if g.oauth.introspects(key) {
			// An opaque OAuth token, unless it is a gateway key: keys
			// first, so a key never goes to the issuer.
			id, e := g.verifyHash(r.Context(), hash)
			if e != nil && e.Kind == bus.ErrUnauthorized {
				return g.verifyToken(r, key, true)
			}
			if e == nil && strings.HasPrefix(id.KeyID, "oauth-") { // an introspected token, cached
				g.exchangeFor(r.Context(), id, key) // oauth_exchange.go
			}
			return id, e
		}
	} else if vr, e := g.uiCaller(r); e != nil { // ui_session.go
		return bus.Identity{}, e
	} else if vr.OAuth != nil {
		return g.askAuth(r.Context(), vr) // a session signed in with OAuth (ui_oauth.go)
	} else {
		hash = vr.KeyHash
	}
	return g.verifyHash(r.Context(), hash)
}

// verifyHash asks auth who the key of hash is ("": no key), or its cache.
func (g *Ingress) verifyHash(ctx context.Context, hash string) (bus.Identity, *bus.Error) {
	var gen uint64
	if g.verified != nil {
		var id bus.Identity
		var ok bool
		if id, ok, gen = g.verified.get(hash); ok {
			return id, nil
		}
	}
	id, e := g.askAuth(ctx, bus.VerifyRequest{KeyHash: hash})
	if e == nil && g.verified != nil {
		g.verified.put(hash, id, gen)
	}
	return id, e
}

// askAuth sends vr to auth and reads its answer.
func (g *Ingress) askAuth(ctx context.Context, vr bus.VerifyRequest) (bus.Identity, *bus.Error) {
	data, _ := json.Marshal(vr)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	msg, err := g.nc.RequestWithContext(ctx, bus.SubjectAuthVerify, data)
	if err != nil {
		return bus.Identity{}, bus.RequestError("auth service", err)
	}
	if e := bus.ReplyError(msg); e != nil {
		return bus.Identity{}, e
	}
	var id bus.Identity
	if err := json.Unmarshal(msg.Data, &id); err != nil {
		return bus.Identity{}, bus.Errorf(bus.ErrInternal, "auth service sent an unreadable identity")
	}
	return id, nil
}

func (g *Ingress) delete(w http.ResponseWriter, r *http.Request) {
	id, e := g.verify(r)
	if e != nil {
		writeError(w, nil, e)
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		writeError(w, nil, bus.Errorf(bus.ErrBadRequest, "Mcp-Session-Id header is required to end a session"))
		return
	}
	if _, e := g.findSession(r.Context(), sid, bus.Envelope{Caller: id, IPClass: g.ipClass(r)}, nil); e != nil {
		writeError(w, nil, e)
		return
	}
	ok, err := g.sessions.remove(r.Context(), sid, id.KeyID)
	if err != nil {
		g.log.Error("session store unavailable", "err", err)
		writeError(w, nil, bus.Errorf(bus.ErrServiceUnavailable, "the session store is unavailable; try again"))
		return
	}
	if !ok {
		writeError(w, nil, bus.Errorf(bus.ErrSessionNotFound, "session not found"))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// initCapabilities returns initialize's params.capabilities, compact (it
// travels in a header), or nil.
func initCapabilities(params json.RawMessage) json.RawMessage {
	var p struct {
		Capabilities json.RawMessage `json:"capabilities"`
	}
	if json.Unmarshal(params, &p) != nil || len(p.Capabilities) == 0 || string(p.Capabilities) == "null" {
		return nil
	}
	var b bytes.Buffer
	if json.Compact(&b, p.Capabilities) != nil {
		return nil
	}
	return b.Bytes()
}

func acceptsSSE(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "text/event-stream") || strings.Contains(a, "*/*")
}

// acceptsJSON is lenient: a client that sends no Accept (curl) gets JSON.
func acceptsJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return a == "" || strings.Contains(a, "application/json") || strings.Contains(a, "*/*") || strings.Contains(a, "application/*")
}
