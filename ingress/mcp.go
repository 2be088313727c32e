package ingress

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// serveMCP is the Streamable HTTP endpoint: /mcp and /mcp/{server}.
func (g *Ingress) serveMCP(w http.ResponseWriter, r *http.Request) {
	pathServer := strings.Trim(strings.TrimPrefix(r.URL.Path, "/mcp"), "/")
	if strings.Contains(pathServer, "/") {
		writeError(w, nil, bus.Errorf(bus.ErrUnknownServer, "unknown MCP endpoint %q: use /mcp or /mcp/{server}", r.URL.Path))
		return
	}
	switch r.Method {
	case http.MethodPost:
		g.post(w, r, pathServer)
	case http.MethodDelete:
		g.delete(w, r)
	default:
		// No standalone server-to-client stream yet: the spec's answer is 405.
		writeError(w, nil, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on the MCP endpoint: use POST (and DELETE to end a session)", r.Method))
	}
}

// request is one POST being handled.
type request struct {
	msg  *bus.Message
	body []byte
	env  bus.Envelope
	sess *session
}

func (g *Ingress) post(w http.ResponseWriter, r *http.Request, pathServer string) {
	req, e := g.admit(w, r, pathServer)
	if e != nil {
		var id json.RawMessage
		if req != nil && req.msg != nil {
			id = req.msg.ID
		}
		writeError(w, id, e)
		return
	}
	if !req.msg.IsRequest() {
		// Notifications and responses are accepted at once (202, no body).
		m := &nats.Msg{Subject: bus.SubjectRouterRPC, Data: req.body, Header: req.env.Header()}
		injectTrace(r.Context(), m.Header)
		if err := g.nc.PublishMsg(m); err != nil {
			writeError(w, nil, bus.RequestError("router", err))
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	if wantsProgress(req.msg) && acceptsSSE(r) {
		g.stream(w, r, req)
		return
	}
	reply, e := g.route(r.Context(), req)
	if e != nil {
		writeError(w, req.msg.ID, e)
		return
	}
	if req.msg.Method == "initialize" {
		if e := g.openSession(w, req, reply); e != nil {
			writeError(w, req.msg.ID, e)
			return
		}
	}
	writeJSON(w, http.StatusOK, reply)
}

// admit checks everything that does not need the router: media types, body,
// message shape, the caller's key, the session and the protocol version.
func (g *Ingress) admit(w http.ResponseWriter, r *http.Request, pathServer string) (*request, *bus.Error) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			return nil, bus.Errorf(bus.ErrUnsupportedMedia, "Content-Type must be application/json, got %q", ct)
		}
	}
	if !acceptsJSON(r) && !acceptsSSE(r) {
		return nil, bus.Errorf(bus.ErrNotAcceptable, "Accept must allow application/json or text/event-stream")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, g.o.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, bus.Errorf(bus.ErrTooLarge, "message larger than %d bytes", g.o.MaxBodyBytes)
		}
		return nil, bus.Errorf(bus.ErrBadRequest, "reading the request body failed")
	}
	msg, perr := bus.ParseMessage(body)
	if perr != nil {
		return nil, perr
	}
	req := &request{msg: msg, body: body}
	noteRequest(r, req)
	id, e := g.verify(r)
	if e != nil {
		return req, e
	}
	req.env = bus.Envelope{
		RequestID: requestID(r),
		Caller:    id,
		IPClass:   g.ipClass(r),
		Servers:   selection(pathServer, r),
		Forward:   g.forwardHeaders(r, callerKey(r)),
	}
	version := r.Header.Get("Mcp-Protocol-Version")
	if version != "" && !bus.SupportedProtocolVersion(version) {
		return req, bus.Errorf(bus.ErrBadRequest, "unsupported MCP-Protocol-Version %q (supported: %s)", version, strings.Join(bus.ProtocolVersions, ", "))
	}
	if msg.Method == "initialize" {
		return req, nil
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		return req, bus.Errorf(bus.ErrBadRequest, "Mcp-Session-Id header is required after initialize")
	}
	req.sess = g.sessions.get(sid, id.KeyID)
	if req.sess == nil {
		return req, bus.Errorf(bus.ErrSessionNotFound, "session not found: it ended or expired; send initialize again")
	}
	// A session belongs to the server it was opened on: a session id is no key
	// to another server's endpoint.
	if len(req.env.Servers) > 0 && !slices.Equal(req.env.Servers, req.sess.servers) {
		return req, bus.Errorf(bus.ErrSessionNotFound, "session not found for this server: it was opened on another one; send initialize again")
	}
	req.env.Session = sid
	if version == "" {
		version = req.sess.version
	}
	req.env.ProtocolVersion = version
	req.env.Servers = req.sess.servers
	return req, nil
}

// verify asks auth who holds the caller's key.
func (g *Ingress) verify(r *http.Request) (bus.Identity, *bus.Error) {
	var vr bus.VerifyRequest
	if key := callerKey(r); key != "" {
		vr.KeyHash = bus.HashKey(key)
	}
	data, _ := json.Marshal(vr)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
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

// route sends the request to the router and waits for its answer. A client that
// goes away stops the wait; it does not cancel the upstream call.
func (g *Ingress) route(ctx context.Context, req *request) (out []byte, rerr *bus.Error) {
	defer func() { traceRouted(ctx, req, out, rerr) }()
	ctx, cancel := context.WithTimeout(ctx, g.o.MaxWait)
	defer cancel()
	ctx, revoke := context.WithCancelCause(ctx)
	defer revoke(nil)
	defer g.calls.add(req.env.Caller.KeyID, req.env.RequestID, revoke)()
	m := &nats.Msg{Subject: bus.SubjectRouterRPC, Data: req.body, Header: req.env.Header()}
	injectTrace(ctx, m.Header)
	reply, err := g.nc.RequestMsgWithContext(ctx, m)
	if err != nil {
		if errors.Is(context.Cause(ctx), errRevoked) {
			return nil, bus.Errorf(bus.ErrKeyRevoked, "key '%s' was revoked while this call ran; the call was cancelled", req.env.Caller.Name())
		}
		return nil, bus.RequestError("router", err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	return reply.Data, nil
}

// openSession records a new session for a successful initialize.
func (g *Ingress) openSession(w http.ResponseWriter, req *request, reply []byte) *bus.Error {
	var res struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if err := json.Unmarshal(reply, &res); err != nil || res.Result.ProtocolVersion == "" {
		return nil // an error response: no session
	}
	sess := &session{id: newSessionID(), keyID: req.env.Caller.KeyID, servers: req.env.Servers, version: res.Result.ProtocolVersion}
	g.sessions.add(sess)
	w.Header().Set("Mcp-Session-Id", sess.id)
	return nil
}

// stream answers a request that asked for progress with an SSE stream: the
// notifications the worker relays for it, then the response.
func (g *Ingress) stream(w http.ResponseWriter, r *http.Request, req *request) {
	inbox := g.nc.NewRespInbox()
	notes := make(chan *nats.Msg, 64)
	sub, err := g.nc.ChanSubscribe(inbox, notes)
	if err != nil {
		writeError(w, req.msg.ID, bus.RequestError("bus", err))
		return
	}
	defer sub.Unsubscribe()
	req.env.Stream = inbox

	type answer struct {
		reply []byte
		err   *bus.Error
	}
	done := make(chan answer, 1)
	go func() {
		reply, e := g.route(context.WithoutCancel(r.Context()), req)
		done <- answer{reply, e}
	}()
	sse := startSSE(w)
	for {
		select {
		case n := <-notes:
			sse.event(n.Data)
		case a := <-done:
			for drained := false; !drained; {
				select {
				case n := <-notes:
					sse.event(n.Data)
				default:
					drained = true
				}
			}
			if a.err != nil {
				sse.event(bus.ErrorResponse(req.msg.ID, a.err))
			} else {
				sse.event(a.reply)
			}
			return
		case <-r.Context().Done():
			return
		}
	}
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
	if !g.sessions.remove(sid, id.KeyID) {
		writeError(w, nil, bus.Errorf(bus.ErrSessionNotFound, "session not found"))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// wantsProgress reports whether a request carries params._meta.progressToken,
// the one case where the gateway streams the answer so progress can reach the
// client. The substring test keeps the common case free of a second parse.
func wantsProgress(m *bus.Message) bool {
	if !bytes.Contains(m.Params, []byte(`"progressToken"`)) {
		return false
	}
	var p struct {
		Meta struct {
			ProgressToken json.RawMessage `json:"progressToken"`
		} `json:"_meta"`
	}
	return json.Unmarshal(m.Params, &p) == nil && len(p.Meta.ProgressToken) > 0 && string(p.Meta.ProgressToken) != "null"
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
