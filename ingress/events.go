package ingress

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// A session's server-to-client stream: the GET stream of Streamable HTTP
// (this file) or a legacy SSE stream (legacy.go). It carries
//
//   - what workers send to bus.SessionSubject(sid): messages for this
//     session that relate to no POST (and, for a legacy session, every
//     answer);
//   - the list_changed notifications of the servers the session uses, and
//     resources/updated for the URIs it subscribed to (notify.go).
//
// A session has at most one such stream per process: a second GET is
// refused with 409, as the MCP SDKs' servers do, rather than replacing the
// first (a client that lost its stream gets a new one once the old
// connection is gone). Across replicas the session subject is a queue
// subscription, so each message reaches one stream even then.
//
// Every event has an id. Last-Event-ID is accepted and ignored: nothing is
// replayed, because POST answers always end with their response and the
// standalone stream keeps no history.

// DefaultKeepalive is how often an idle GET stream gets an SSE comment, so
// proxies and clients do not time it out (Options.Keepalive).
const DefaultKeepalive = 25 * time.Second

// sessionQueue is the queue group of session stream subscriptions.
const sessionQueue = "mcpbus-session-stream"

// eventStream is one open server-to-client stream.
type eventStream struct {
	sid     string
	sink    *sink
	caller  bus.Identity
	ipClass bus.IPClass
	servers []string
	end     context.CancelCauseFunc
}

// errSessionEnded ends the streams of a session that was deleted or expired.
var errSessionEnded = errors.New("session ended")

// eventStreams are this process's open streams, by session.
type eventStreams struct {
	mu     sync.Mutex
	m      map[string]*eventStream
	closed bool
}

// register adds st unless its session has a stream here already (or the
// ingress is closing), else returns the error to answer with.
func (es *eventStreams) register(st *eventStream) *bus.Error {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.closed {
		return bus.Errorf(bus.ErrServiceUnavailable, "this ingress is shutting down; reconnect")
	}
	if es.m[st.sid] != nil {
		return bus.Errorf(bus.ErrConflict, "this session's server-to-client stream is already open (one GET stream per session): close it before opening another")
	}
	if es.m == nil {
		es.m = map[string]*eventStream{}
	}
	es.m[st.sid] = st
	return nil
}

func (es *eventStreams) unregister(st *eventStream) {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.m[st.sid] == st {
		delete(es.m, st.sid)
	}
}

// end ends the stream of session sid, if one is open here.
func (es *eventStreams) end(sid string, cause error) {
	es.mu.Lock()
	st := es.m[sid]
	es.mu.Unlock()
	if st != nil {
		st.end(cause)
	}
}

// each calls f for every open stream, under the lock: f must not block.
func (es *eventStreams) each(f func(*eventStream)) {
	es.mu.Lock()
	defer es.mu.Unlock()
	for _, st := range es.m {
		f(st)
	}
}

// closeAll ends every stream and refuses new ones (Close).
func (es *eventStreams) closeAll() {
	es.mu.Lock()
	es.closed = true
	streams := make([]*eventStream, 0, len(es.m))
	for _, st := range es.m {
		streams = append(streams, st)
	}
	es.mu.Unlock()
	for _, st := range streams {
		st.end(errClosing)
	}
}

var errClosing = errors.New("ingress closing")

// endOnShutdown makes the HTTP server serving r end this process's streams
// when it shuts down: Shutdown waits for every handler to return, and a
// stream's handler returns only when the stream ends.
func (g *Ingress) endOnShutdown(r *http.Request) {
	srv, _ := r.Context().Value(http.ServerContextKey).(*http.Server)
	if srv == nil {
		return
	}
	if _, hooked := g.httpServers.LoadOrStore(srv, true); !hooked {
		srv.RegisterOnShutdown(g.events.closeAll)
		srv.RegisterOnShutdown(g.listens.closeAll)
	}
}

// openStream serves GET on the MCP endpoint: the session's standalone
// server-to-client stream. The key, session and server checks are POST's.
func (g *Ingress) openStream(w http.ResponseWriter, r *http.Request, pathServer string) {
	if !acceptsSSE(r) {
		writeError(w, nil, bus.Errorf(bus.ErrNotAcceptable, "Accept must include text/event-stream to open the server-to-client stream (GET); send messages with POST"))
		return
	}
	id, e := g.verify(r)
	if e != nil {
		writeError(w, nil, e)
		return
	}
	if v := r.Header.Get("Mcp-Protocol-Version"); v != "" && !bus.SupportedProtocolVersion(v) {
		writeError(w, nil, bus.Errorf(bus.ErrBadRequest, "unsupported MCP-Protocol-Version %q", v))
		return
	}
	sid := r.Header.Get("Mcp-Session-Id")
	if sid == "" {
		writeError(w, nil, bus.Errorf(bus.ErrBadRequest, "Mcp-Session-Id header is required to open the server-to-client stream: initialize first (POST)"))
		return
	}
	class := g.ipClass(r)
	servers := selection(pathServer, r)
	if e := bus.CheckSelection(servers, "the server selection"); e != nil {
		writeError(w, nil, e)
		return
	}
	sess, e := g.findSession(r.Context(), sid, bus.Envelope{Caller: id, IPClass: class}, servers)
	if e != nil {
		writeError(w, nil, e)
		return
	}
	if r.Header.Get("Last-Event-ID") != "" {
		g.log.Debug("a client resumed a stream; nothing is replayed", "request_id", requestID(r))
	}
	st := &eventStream{sid: sid, sink: newSink(), caller: id, ipClass: class, servers: sess.rec.Servers}
	g.serveEvents(w, r, st, func(sse *sseWriter) {
		if primes(sess.rec.Version) {
			_ = sse.prime()
		}
	}, requestID(r)) // unique across processes, like every request id
}

// mayDeliver checks a message for a session's stream against the stream's
// caller, as every message that crosses from an upstream to a client is
// checked: a worker's message comes under its server's name
// (bus.ClientSubject; bus permissions keep a worker to its own), which the
// caller must still be able to see from its IP class and use with its key
// (the session may have been opened, or the server's visibility changed,
// since); the gateway's own answers (legacy transport) carry the envelope of
// the request they answer, whose key and IP class must be the stream's.
func (g *Ingress) mayDeliver(st *eventStream, m *nats.Msg) *bus.Error {
	sender := bus.SenderOf(m.Subject)
	if sender != bus.GatewayToken {
		if !g.uses(st, sender) {
			return bus.Errorf(bus.ErrNotPermitted, "a message from server %q is not for this stream: its caller may not see or use that server", bus.Shorten(sender, 64))
		}
		return nil
	}
	if m.Header.Get(bus.HeaderKeyID) == st.caller.KeyID && bus.IPClass(m.Header.Get(bus.HeaderIPClass)) == st.ipClass {
		return nil
	}
	return bus.Errorf(bus.ErrNotPermitted, "a gateway message that does not answer this stream's caller; not delivered")
}

// serveEvents runs a session stream until the client leaves, the session
// ends, the caller's key is revoked or the ingress closes. first writes the
// stream's first event; ids prefixes event ids ("" for none).
func (g *Ingress) serveEvents(w http.ResponseWriter, r *http.Request, st *eventStream, first func(*sseWriter), ids string) {
	ctx, end := context.WithCancelCause(r.Context())
	defer end(nil)
	st.end = end
	if e := g.events.register(st); e != nil {
		writeError(w, nil, e)
		return
	}
	defer g.events.unregister(st)
	defer g.calls.add(st.caller.KeyID, requestID(r), end)()
	g.endOnShutdown(r)
	sub, err := g.nc.QueueSubscribe(bus.ClientSubject(bus.SessionSubject(st.sid), "*"), sessionQueue, func(m *nats.Msg) {
		if e := g.mayDeliver(st, m); e != nil {
			g.log.Warn("not delivering a message to a session stream", "request_id", requestID(r), "reason", e.Message)
			if m.Reply != "" {
				_ = bus.ReplyTo(g.nc, m.Reply).Error(e)
			}
			return
		}
		if !st.sink.push(m) {
			g.log.Warn("a session stream is not keeping up; dropped a message", "request", m.Reply != "")
		}
	})
	if err == nil {
		// The server has the subscription before the client hears of the
		// stream, so nothing published after is missed.
		err = g.nc.FlushTimeout(5 * time.Second)
	}
	if err != nil {
		if sub != nil {
			_ = sub.Unsubscribe()
		}
		writeError(w, nil, bus.RequestError("bus", err))
		return
	}
	defer sub.Unsubscribe()

	sse := startSSE(w, ids)
	first(sse)
	// An open stream is a session in use.
	g.pump(ctx, sse, st.sink, func() { g.sessions.keepAlive(st.sid) })
}

// pump writes what arrives in snk to sse, acknowledging each message (a
// server-to-client request's worker waits for it), with a keep-alive
// comment (then idle) whenever the stream was quiet for g.keepalive, until
// ctx ends (true) or the client is gone (false).
func (g *Ingress) pump(ctx context.Context, sse *sseWriter, snk *sink, idle func()) bool {
	keepalive := time.NewTicker(g.keepalive)
	defer keepalive.Stop()
	var batch []*nats.Msg
	for {
		select {
		case <-snk.wake:
			msgs, _ := snk.take(batch)
			batch = msgs
			for _, m := range msgs {
				if sse.message(m.Data) != nil {
					return false
				}
				g.ack(m)
			}
		case <-keepalive.C:
			if sse.comment("keepalive") != nil {
				return false
			}
			if idle != nil {
				idle()
			}
		case <-ctx.Done():
			return true
		}
	}
}
