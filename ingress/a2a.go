package ingress

import (
	"encoding/json"
	"net/http"

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
	stream := bus.A2AStreaming(msg.Method)
	h := nats.Header{bus.HeaderA2AVersion: {bus.A2AClientWire(msg.Method, r.Header.Get("A2A-Version"))}}
	g.relayBus(r, busRelay{subject: bus.AgentRPC(agent), env: env, body: body, stream: stream, header: h,
		sender: bus.A2ASender, what: "agent " + agent}, &a2aAnswer{w: w, id: msg.ID, agent: agent, stream: stream}) // relay_bus.go
}

// serveA2ANoAgent answers POST /a2a, which names no agent.
func (g *Ingress) serveA2ANoAgent(w http.ResponseWriter, r *http.Request) {
	writeA2AError(w, nil, bus.Errorf(bus.ErrAgentNotFound, "name an agent: POST /a2a/{agent} (GET /v1/agents or /.well-known/agent.json lists the agents your key may use)"))
}

// a2aCaller checks the Origin and Host, verifies the caller and makes its
// envelope.
func (g *Ingress) a2aCaller(w http.ResponseWriter, r *http.Request) (bus.Envelope, bool) {
	env, e := g.envelopeOf(r) // rest.go
	if e != nil {
		writeA2AError(w, nil, e)
	}
	return env, e == nil
}

// a2aAnswer writes one A2A answer: JSON, or server-sent events opened by
// the first event.
type a2aAnswer struct {
	w      http.ResponseWriter
	id     json.RawMessage
	sse    bool
	agent  string
	stream bool // the method streams
}

// answer ends the answer with the reply: no responders means no worker
// serves the agent.
func (a *a2aAnswer) answer(reply *nats.Msg) {
	switch e := bus.ReplyError(reply); {
	case bus.NoResponders(reply):
		a.fail(bus.UnknownAgent(a.agent))
	case e != nil:
		a.fail(e)
	default:
		a.done(reply.Data, a.stream)
	}
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
