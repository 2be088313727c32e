package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// The A2A routes (docs/AGENTS.md): POST /a2a/{agent} takes A2A JSON-RPC in
// either wire (0.3 or 1.0), also at LiteLLM's aliases
// /a2a/{agent}/message/send and /v1/a2a/{agent}/message/send. The ingress
// verifies the key and relays the request with the caller's envelope to the
// agent's workers (bus/a2a.go), which check visibility and the key's
// agents, hold the agent's credentials and speak its wire; a stream's
// events come on the POST's stream subject (streams.go) and go out as
// server-sent events as they arrive. The cards and the agent list are in
// a2a_card.go.

// a2aRoutes registers the A2A routes.
func (g *Ingress) a2aRoutes(mux *http.ServeMux) {
	mux.HandleFunc("/a2a/{agent}", g.serveA2A)
	mux.HandleFunc("/a2a/{agent}/message/send", g.serveA2A)
	mux.HandleFunc("/v1/a2a/{agent}/message/send", g.serveA2A)
	mux.HandleFunc("/a2a", g.serveA2ANoAgent)
	g.a2aCardRoutes(mux) // a2a_card.go
}

// serveA2A relays one A2A JSON-RPC request and its answer.
func (g *Ingress) serveA2A(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeA2AError(w, nil, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on %s: A2A JSON-RPC is POSTed", r.Method, r.URL.Path))
		return
	}
	env, ok := g.a2aCaller(w, r)
	if !ok {
		return
	}
	agent := r.PathValue("agent")
	if !bus.ValidToken(agent) {
		writeA2AError(w, nil, bus.UnknownAgent(agent))
		return
	}
	body, e := g.readBody(w, r, g.o.MaxBodyBytes)
	if e != nil {
		writeA2AError(w, nil, e)
		return
	}
	msg, e := bus.ParseMessage(body)
	if e == nil && (msg.Method == "" || msg.ID == nil) {
		e = bus.Errorf(bus.ErrInvalidRequest, "an A2A call is a JSON-RPC request: a method and an id (A2A has no notifications)")
	}
	if e != nil {
		var id json.RawMessage
		if msg != nil {
			id = msg.ID
		}
		writeA2AError(w, id, e)
		return
	}
	if g.hub == nil {
		writeA2AError(w, msg.ID, bus.Errorf(bus.ErrServiceUnavailable, "this ingress could not subscribe to its stream subjects on the bus; see its log"))
		return
	}
	stream := bus.A2AStreaming(msg.Method)
	ctx, cancel := context.WithDeadline(r.Context(), time.Now().Add(g.o.MaxWait))
	defer cancel()
	ctx, revoke := context.WithCancelCause(ctx)
	defer revoke(nil)
	defer g.calls.add(env.Caller.KeyID, env.RequestID, revoke)()
	env.Deadline, _ = ctx.Deadline()

	ps := g.hub.openStream()
	defer g.hub.closeStream(ps)
	if stream {
		env.Stream = ps.streamTo
	}
	m := &nats.Msg{Subject: bus.AgentRPC(agent), Reply: ps.replyTo, Data: body, Header: env.Header()}
	m.Header.Set(bus.HeaderA2AVersion, bus.A2AClientWire(msg.Method, r.Header.Get("A2A-Version")))
	injectTrace(ctx, m.Header)
	if err := g.nc.PublishMsg(m); err != nil {
		writeA2AError(w, msg.ID, bus.RequestError("the agent workers", err))
		return
	}
	a := &a2aAnswer{w: w, id: msg.ID}
	var batch []*nats.Msg
	for {
		select {
		case <-ps.wake:
		case <-ctx.Done():
			// The client left, its key was revoked, or the wait ran out:
			// the call stops wherever it runs.
			_ = g.nc.Publish(bus.SubjectCancel, []byte(env.RequestID))
			if r.Context().Err() == nil {
				a.fail(a2aWaitError(ctx, agent, g.o.MaxWait))
			}
			return
		}
		msgs, reply := ps.take(batch)
		batch = msgs
		for _, ev := range msgs {
			if ev.Subject == ps.streamTo+"."+bus.A2ASender { // only the agent workers send events
				a.event(ev.Data)
			}
		}
		if ps.lost() > 0 {
			a.fail(bus.Errorf(bus.ErrInternal, "the client read the stream too slowly and events were dropped"))
			return
		}
		if reply == nil {
			continue
		}
		switch e := bus.ReplyError(reply); {
		case bus.NoResponders(reply):
			a.fail(bus.UnknownAgent(agent)) // no worker serves it
		case e != nil:
			a.fail(e)
		default:
			a.done(reply.Data, stream)
		}
		return
	}
}

// serveA2ANoAgent answers POST /a2a, which names no agent.
func (g *Ingress) serveA2ANoAgent(w http.ResponseWriter, r *http.Request) {
	writeA2AError(w, nil, bus.Errorf(bus.ErrAgentNotFound, "name an agent: POST /a2a/{agent} (GET /v1/agents or /.well-known/agent.json lists the agents your key may use)"))
}

// a2aCaller checks the Origin and Host, verifies the caller and makes its
// envelope.
func (g *Ingress) a2aCaller(w http.ResponseWriter, r *http.Request) (bus.Envelope, bool) {
	if e := g.origin.checkOn(r, r.URL.Path); e != nil {
		writeA2AError(w, nil, e)
		return bus.Envelope{}, false
	}
	id, e := g.verify(r)
	if e != nil {
		writeA2AError(w, nil, e)
		return bus.Envelope{}, false
	}
	return bus.Envelope{RequestID: requestID(r), Caller: id, IPClass: g.ipClass(r)}, true
}

// a2aAnswer writes one A2A answer: JSON, or server-sent events opened by
// the first event.
type a2aAnswer struct {
	w   http.ResponseWriter
	id  json.RawMessage
	sse bool
}

func (a *a2aAnswer) open() {
	if a.sse {
		return
	}
	h := a.w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	a.w.WriteHeader(http.StatusOK)
	a.sse = true
}

// event writes one event (a whole JSON-RPC response) and flushes it.
func (a *a2aAnswer) event(data []byte) {
	a.open()
	_, _ = a.w.Write([]byte("data: "))
	_, _ = a.w.Write(data)
	_, _ = a.w.Write([]byte("\n\n"))
	_ = http.NewResponseController(a.w).Flush()
}

// done ends a successful answer: the agent's JSON-RPC response, or the end
// of the stream (an empty one if the agent sent no event).
func (a *a2aAnswer) done(data []byte, stream bool) {
	switch {
	case a.sse:
	case len(data) > 0:
		writeJSON(a.w, http.StatusOK, data)
	case stream:
		a.open()
		_ = http.NewResponseController(a.w).Flush()
	default:
		writeA2AError(a.w, a.id, bus.Errorf(bus.ErrUpstreamProtocol, "the agent's worker answered nothing"))
	}
}

// fail ends the answer with e: an error status before the stream opened,
// an error event in it after.
func (a *a2aAnswer) fail(e *bus.Error) {
	if !a.sse {
		writeA2AError(a.w, a.id, e)
		return
	}
	a.event(bus.ErrorResponse(a.id, e))
}

// writeA2AError answers with e as a JSON-RPC error with the REST status,
// as LiteLLM's A2A routes do (404 for an unknown agent, 403 for one the
// key may not use).
func writeA2AError(w http.ResponseWriter, id json.RawMessage, e *bus.Error) {
	errorHeaders(w.Header(), e)
	writeJSON(w, restStatus(e), bus.ErrorResponse(id, e))
}

// a2aWaitError is the error of a wait that ended before the answer.
func a2aWaitError(ctx context.Context, agent string, wait time.Duration) *bus.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errRevoked):
		return bus.Errorf(bus.ErrKeyRevoked, "the key was revoked while agent %s answered", agent)
	case errors.Is(cause, errShutdown):
		return bus.Errorf(bus.ErrServiceUnavailable, "the gateway stopped before agent %s answered", agent)
	}
	return bus.Errorf(bus.ErrUpstreamTimeout, "agent %s did not answer within %s", agent, wait)
}
