package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// The legacy HTTP+SSE transport (protocol 2024-11-05), for older clients:
//
//   - GET /sse (or /sse/{server}) opens a stream whose first event is
//     "endpoint", with the URL to POST messages to
//     (/messages?session_id=<sid>). The session is made then, bound to the
//     caller's key and the server selection, at version 2024-11-05 until the
//     client's initialize negotiates another. Closing the stream ends it.
//   - POST /messages?session_id=<sid> takes one JSON-RPC message and answers
//     202 at once. The answer, and every message related to it or to the
//     session, comes as a "message" event on the stream: the answer is
//     published to bus.SessionSubject(sid) (which the stream's ingress, any
//     replica, follows), and so is everything workers send (Envelope.Stream
//     is that subject).
//
// Key, IP class and Origin/Host rules are those of /mcp.

// legacyVersion is the protocol of the HTTP+SSE transport.
const legacyVersion = "2024-11-05"

// serveLegacyStream serves GET /sse and /sse/{server}.
func (g *Ingress) serveLegacyStream(w http.ResponseWriter, r *http.Request) {
	pathServer, ok := g.endpoint(w, r, "/sse", "SSE")
	if !ok {
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		writeError(w, nil, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on the SSE endpoint: GET opens the stream, messages go to the endpoint it names", r.Method))
		return
	}
	id, e := g.verify(r)
	if e != nil {
		writeError(w, nil, e)
		return
	}
	servers := selection(pathServer, r)
	if e := bus.CheckSelection(servers, "the server selection"); e != nil {
		writeError(w, nil, e)
		return
	}
	if e := g.mayOpenSession(id); e != nil {
		writeError(w, nil, e)
		return
	}
	class := g.ipClass(r)
	sess := newSession(bus.Envelope{Caller: id, Servers: servers, IPClass: class}, legacyVersion, nil)
	if err := g.sessions.add(r.Context(), sess); err != nil {
		g.log.Error("could not store a new session", "err", err)
		writeError(w, nil, bus.Errorf(bus.ErrServiceUnavailable, "the session store is unavailable; try again"))
		return
	}
	sid := sess.rec.ID
	defer func() {
		// The stream was the session: end it with the stream.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 5*time.Second)
		defer cancel()
		if _, err := g.sessions.remove(ctx, sid, id.KeyID); err != nil {
			g.log.Warn("could not remove an ended legacy session", "err", err)
		}
	}()
	st := &eventStream{sid: sid, sink: newSink(), caller: id, ipClass: class, servers: servers}
	endpoint := []byte("/messages?session_id=" + sid)
	g.serveEvents(w, r, st, func(sse *sseWriter) { _ = sse.event("endpoint", endpoint) }, "")
}

// serveLegacyMessage serves POST /messages?session_id=<sid>.
func (g *Ingress) serveLegacyMessage(w http.ResponseWriter, r *http.Request) {
	if e := g.origin.check(r); e != nil {
		writeError(w, nil, e)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, nil, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on the messages endpoint: POST one JSON-RPC message", r.Method))
		return
	}
	sid := r.URL.Query().Get("session_id")
	if sid == "" {
		writeError(w, nil, bus.Errorf(bus.ErrBadRequest, "the session_id query parameter is required: POST to the URL of the stream's endpoint event"))
		return
	}
	var req *request
	sse, e := checkMedia(r)
	if e == nil {
		e = bus.CheckSessionID(sid, "the session_id query parameter")
	}
	var id bus.Identity
	if e == nil {
		id, e = g.verify(r) // the key before the body
	}
	if e == nil {
		req, e = g.readMessage(w, r, sse)
	}
	if e == nil {
		e = g.identify(r, req, id, nil)
	}
	var sess *session
	if e == nil {
		sess, e = g.findSession(r.Context(), sid, req.env, nil)
	}
	if e != nil {
		var id json.RawMessage
		if req != nil && req.msg != nil {
			id = req.msg.ID
		}
		writeError(w, id, e)
		return
	}
	req.attach(sess)
	if e := req.checkSessionChange(); e != nil {
		writeError(w, req.msg.ID, e)
		return
	}
	req.env.Stream = bus.SessionSubject(sid)
	if req.msg.Method == bus.MethodInitialize {
		req.env.ClientCapabilities = envelopeCapabilities(initCapabilities(req.msg.Params))
	}
	if e := req.env.Validate(); e != nil {
		writeError(w, req.msg.ID, e)
		return
	}
	if !req.msg.IsRequest() {
		if e := g.publish(r.Context(), req); e != nil {
			writeError(w, nil, e)
			return
		}
		w.WriteHeader(http.StatusAccepted)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	go g.answerLegacy(context.WithoutCancel(r.Context()), req)
}

// answerLegacy routes a request of a legacy session and publishes the answer
// to the session's stream.
func (g *Ingress) answerLegacy(ctx context.Context, req *request) {
	body, e := g.route(ctx, req)
	if e == nil {
		g.afterLegacyReply(ctx, req, body)
	} else {
		body = bus.ErrorResponse(req.msg.ID, e)
	}
	// The answer carries the request's key and IP class: the stream
	// delivers only what its own caller may see (mayDeliver).
	m := &nats.Msg{Subject: bus.ClientSubject(bus.SessionSubject(req.sess.rec.ID), bus.GatewayToken), Data: body, Header: nats.Header{
		bus.HeaderKeyID: {req.env.Caller.KeyID}, bus.HeaderIPClass: {string(req.env.IPClass)}}}
	if err := g.nc.PublishMsg(m); err != nil {
		g.log.Warn("could not deliver an answer to a legacy SSE stream", "request_id", req.env.RequestID, "err", err)
	}
}

// afterLegacyReply records what a reply changes in a legacy session: its
// initialize sets the version and capabilities of the session the stream
// opened; the rest is as on /mcp.
func (g *Ingress) afterLegacyReply(ctx context.Context, req *request, reply []byte) {
	if req.msg.Method != bus.MethodInitialize {
		_ = g.afterReply(ctx, nil, req, reply, false)
		return
	}
	version := negotiated(reply)
	if version == "" {
		return
	}
	caps := initCapabilities(req.msg.Params)
	if err := g.sessions.update(ctx, req.sess.rec.ID, func(rec *bus.SessionRecord) {
		rec.Version, rec.Capabilities = version, caps
	}); err != nil {
		g.log.Warn("could not record a legacy session's initialize", "request_id", req.env.RequestID, "err", err)
	}
}
