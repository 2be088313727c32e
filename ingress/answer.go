package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// answer sends a request to the router and delivers what comes back. The
// form of the answer is decided by what arrives first:
//
//   - the router's reply: a plain JSON response, the common case;
//   - a message related to the request (progress, a log message, a
//     server-to-client request such as sampling/createMessage), which
//     workers send to the request's stream subject: the answer becomes an
//     SSE stream carrying that message, every later one, then the response.
//
// Requests with a progress token follow the same rule: a call that finishes
// before reporting progress is answered with JSON. A client that does not
// accept text/event-stream gets no stream subject, so workers refuse
// server-to-client requests for it. A client that goes away stops the wait;
// it cancels the upstream call only in the stateless era, where closing the
// stream is how a client cancels (a session's client sends
// notifications/cancelled).
func (g *Ingress) answer(w http.ResponseWriter, r *http.Request, req *request) {
	t := g.target(req)
	ctx, cancel := context.WithDeadline(r.Context(), t.waitUntil(g.o.MaxWait))
	defer cancel()
	ctx, revoke := context.WithCancelCause(ctx)
	defer revoke(nil)
	defer g.calls.add(req.env.Caller.KeyID, req.env.RequestID, revoke)()

	if g.hub == nil {
		writeError(w, req.msg.ID, bus.Errorf(bus.ErrServiceUnavailable, "this ingress could not subscribe to its stream subjects on the bus; see its log"))
		return
	}
	ps := g.hub.openStream()
	defer g.hub.closeStream(ps)
	if req.sse && req.msg.Method != bus.MethodInitialize {
		// initialize is answered by the router alone, and its answer must be
		// plain so the session header can go with it.
		req.env.Stream = ps.streamTo
	}
	// A send straight to the workers goes with liveness (bus/liveness.go):
	// watch ends a try nobody took, recalls the answer of a worker gone
	// silent, and ends a call whose worker stays silent.
	p := &pending{g: g, w: w, r: r, req: req, ctx: ctx, t: t, ps: ps, watch: bus.NewWatch()}
	defer p.watch.Stop()
	if p.resend() {
		return
	}
	for !p.step() {
	}
}

// pending is one POST waiting on the bus for its answer.
type pending struct {
	g   *Ingress
	w   http.ResponseWriter
	r   *http.Request
	req *request
	ctx context.Context
	t   target

	ps    *postStream
	reply string // the current try's reply subject (postStream.replyFor)
	watch *bus.Watch
	seen  int // acknowledgements and heartbeats of the current try
	sse   *sseWriter
	batch []*nats.Msg
}

// send publishes the request to the current target, as a new try.
func (p *pending) send() error {
	p.reply = p.ps.replyFor(p.t.answerer())
	m := &nats.Msg{Subject: p.t.subject, Reply: p.reply, Data: p.req.body, Header: p.req.env.Header()}
	injectTrace(p.ctx, m.Header)
	p.seen = 0
	tag := p.watch.Try(!p.g.clockSkew.Load())
	if tag != "" {
		m.Header[bus.HeaderAcceptBy] = []string{tag}
	}
	p.ps.try(tag)
	return p.g.nc.PublishMsg(m)
}

// resend sends; true (the POST answered with the failure) if it failed.
func (p *pending) resend() bool {
	if err := p.send(); err != nil {
		p.finish(nil, p.t.failure(err))
		return true
	}
	return false
}

// finish answers the POST.
func (p *pending) finish(reply *nats.Msg, e *bus.Error) {
	p.g.finish(p.w, p.r, p.req, p.sse, reply, e)
}

// step waits for what comes next and handles it; true once the POST is answered
// (or its client left).
func (p *pending) step() bool {
	select {
	case <-p.ps.wake:
	case <-p.watch.C():
		return p.watchFired()
	case <-p.ctx.Done():
		if p.r.Context().Err() == nil { // else the client left
			p.finish(nil, p.t.waitError(p.ctx, p.req))
		} else if p.req.modern {
			p.g.cancelLeft(p.req)
		}
		return true
	}
	if handled, done := p.liveness(); handled {
		return done
	}
	msgs, reply := p.ps.take(p.batch)
	p.batch = msgs
	p.relay(msgs)
	return p.replied(reply)
}

// watchFired acts on the watch: send again, recall, or give up.
func (p *pending) watchFired() bool {
	switch p.watch.Fired() {
	case bus.Resend: // nobody took it: another replica may
		return p.resend()
	case bus.Recall:
		_ = bus.SendRecall(p.g.nc, p.watch.Responder(), p.reply)
		return false
	default:
		p.finish(nil, p.t.lostError(!p.watch.Accepted()))
		return true
	}
}

// liveness reads the try's acknowledgements and heartbeats; handled says it
// acted on them (and done whether the POST is answered).
func (p *pending) liveness() (handled, done bool) {
	beats, expired, last := p.ps.liveness()
	switch {
	case beats > p.seen:
		p.seen = beats
		p.watch.Heard(last)
	case expired && p.seen == 0 && !bus.ClockAhead(last, time.Now()):
		// Taken after its accept-by by a late replica (busy, or just
		// resumed from a freeze): another try, while tries remain.
		if !p.watch.MayResend() {
			p.finish(nil, p.t.lostError(true))
			return true, true
		}
		return true, p.resend()
	case expired && p.seen == 0:
		// Dropped as too late by a worker whose clock is ahead of this
		// one's: send without liveness from now on.
		if !p.g.clockSkew.Swap(true) {
			who := "the gateway router"
			if p.t.server != nil {
				who = "a tool worker of server " + p.t.server.Name
			}
			p.g.log.Warn("the clock of " + who + " is more than " + bus.AcceptGrace.String() + " ahead of this ingress's; requests go without liveness from now on (fix NTP)")
		}
		return true, p.resend()
	}
	return false, false
}

// relay writes what came for the POST's stream to it, opening it first.
func (p *pending) relay(msgs []*nats.Msg) {
	for _, m := range msgs {
		if e := p.g.mayRelay(p.req, m); e != nil {
			p.g.log.Warn("not relaying a message to a POST's stream", "request_id", p.req.env.RequestID, "reason", e.Message)
			if m.Reply != "" {
				_ = bus.ReplyTo(p.g.nc, m.Reply).Error(e)
			}
			continue
		}
		if p.sse == nil {
			p.sse = p.g.startPostStream(p.w, p.req, p.ps)
		}
		if p.sse.message(m.Data) == nil {
			p.g.ack(m)
		}
	}
}

// replied handles the reply, if one came; true once the POST is answered.
func (p *pending) replied(reply *nats.Msg) bool {
	if reply != nil && p.watch.Accepted() && bus.NoResponders(reply) {
		// The answer to a recall: the worker that took the call may be
		// gone. It may have reached the upstream: never sent again.
		if p.watch.Gone() {
			p.finish(nil, p.t.lostError(false))
			return true
		}
		p.ps.retract() // an earlier recall's: the next one tells
		reply = nil
	}
	if reply != nil && p.sse == nil && p.t.refused(reply) {
		p.t = viaRouter // target.go: the router answers a refused direct send
		p.ps.retract()
		return p.resend()
	}
	if reply != nil {
		p.finish(reply, p.t.replyError(reply))
		return true
	}
	return false
}

// mayRelay checks a message for a POST's stream as mayDeliver does for a
// session's: a worker's comes under its server's name, which the caller must
// be able to see and use; the gateway's own (the router's warnings) pass.
func (g *Ingress) mayRelay(req *request, m *nats.Msg) *bus.Error {
	sender := bus.SenderOf(m.Subject)
	if sender == bus.GatewayToken || g.callerUses(req.env.Caller, req.env.IPClass, req.env.Servers, sender) {
		return nil
	}
	return bus.Errorf(bus.ErrNotPermitted, "a message from server %q is not for this request: its caller may not see or use that server", bus.Shorten(sender, 64))
}

// startPostStream switches a POST's answer to SSE.
func (g *Ingress) startPostStream(w http.ResponseWriter, req *request, ps *postStream) *sseWriter {
	ids := g.hub.id + "-" + strconv.FormatUint(ps.n, 36)
	if req.modern {
		ids = "" // the stateless era does not resume streams: no event ids
	}
	sse := startSSE(w, ids)
	if req.sess != nil && primes(req.sess.rec.Version) {
		_ = sse.prime()
	}
	return sse
}

// ack tells the worker that sent a server-to-client request that it reached
// the client's stream (bus/stream.go). Notifications carry no reply subject.
func (g *Ingress) ack(m *nats.Msg) {
	if m.Reply != "" {
		_ = g.nc.Publish(m.Reply, nil)
	}
}

// finish delivers the reply (or e, the error answer.go read from it or got
// instead): as the JSON answer, or as the last event of the stream.
func (g *Ingress) finish(w http.ResponseWriter, r *http.Request, req *request, sse *sseWriter, reply *nats.Msg, e *bus.Error) {
	var body []byte
	if e == nil {
		body = reply.Data
		e = g.afterReply(r.Context(), w, req, body, sse == nil)
	}
	traceRouted(r.Context(), req, body, e)
	status := http.StatusOK
	if e == nil && req.modern {
		status, body = bus.ModernAnswer(body, req.msg.Method)
	}
	if sse == nil {
		if e != nil {
			writeErrorFor(w, req.msg.ID, e, req.modern)
			return
		}
		writeJSON(w, status, body)
		return
	}
	if e != nil {
		body = bus.ErrorResponseFor(req.msg.ID, e, req.modern)
	}
	_ = sse.message(body)
}

// afterReply records what a successful reply changes in the session:
// initialize opens it (plain answers only: the header must precede the
// body), resources/subscribe and unsubscribe change its subscriptions,
// logging/setLevel its level. Other methods cost a switch.
func (g *Ingress) afterReply(ctx context.Context, w http.ResponseWriter, req *request, reply []byte, plain bool) *bus.Error {
	switch req.msg.Method {
	case bus.MethodInitialize:
		if plain && req.sess == nil {
			return g.openSession(ctx, w, req, reply)
		}
	case bus.MethodResourcesSubscribe, bus.MethodResourcesUnsubscribe, bus.MethodLoggingSetLevel:
		if req.sess != nil && succeeded(reply) {
			g.recordChange(ctx, req)
		}
	}
	return nil
}

// openSession records a new session for a successful initialize.
func (g *Ingress) openSession(ctx context.Context, w http.ResponseWriter, req *request, reply []byte) *bus.Error {
	version := negotiated(reply)
	if version == "" {
		return nil // an error response: no session
	}
	sess := newSession(req.env, version, initCapabilities(req.msg.Params))
	if err := g.sessions.add(ctx, sess); err != nil {
		g.log.Error("could not store a new session", "err", err)
		return bus.Errorf(bus.ErrServiceUnavailable, "the session store is unavailable; try again")
	}
	w.Header().Set("Mcp-Session-Id", sess.rec.ID)
	return nil
}

// negotiated is the protocolVersion of an initialize result ("" for an error).
func negotiated(reply []byte) string {
	var res struct {
		Result struct {
			ProtocolVersion string `json:"protocolVersion"`
		} `json:"result"`
	}
	if json.Unmarshal(reply, &res) != nil {
		return ""
	}
	return res.Result.ProtocolVersion
}

// succeeded reports whether a response carries a result, not an error.
func succeeded(reply []byte) bool {
	var res struct {
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	return json.Unmarshal(reply, &res) == nil && len(res.Result) > 0 && len(res.Error) == 0
}

// recordChange stores a subscription or log level change in the session, so
// every replica routes resources/updated and stamps the level accordingly.
func (g *Ingress) recordChange(ctx context.Context, req *request) {
	var p struct {
		URI   string `json:"uri"`
		Level string `json:"level"`
	}
	if json.Unmarshal(req.msg.Params, &p) != nil {
		return
	}
	method := req.msg.Method
	err := g.sessions.update(ctx, req.sess.rec.ID, func(rec *bus.SessionRecord) {
		switch method {
		case bus.MethodResourcesSubscribe:
			if p.URI != "" && !slices.Contains(rec.Subscriptions, p.URI) {
				rec.Subscriptions = append(rec.Subscriptions, p.URI)
			}
		case bus.MethodResourcesUnsubscribe:
			rec.Subscriptions = slices.DeleteFunc(rec.Subscriptions, func(u string) bool { return u == p.URI })
		case bus.MethodLoggingSetLevel:
			rec.LogLevel = p.Level
		}
	})
	if err != nil {
		g.log.Warn("could not record a session change", "method", method, "request_id", req.env.RequestID, "err", err)
	}
}

// route sends a request to the router and waits for its answer, with no
// stream (the REST surface, legacy sessions). A client that goes away stops
// the wait; it does not cancel the upstream call.
func (g *Ingress) route(ctx context.Context, req *request) (out []byte, rerr *bus.Error) {
	defer func() { traceRouted(ctx, req, out, rerr) }()
	t := g.target(req)
	ctx, cancel := context.WithDeadline(ctx, t.waitUntil(g.o.MaxWait))
	defer cancel()
	ctx, revoke := context.WithCancelCause(ctx)
	defer revoke(nil)
	defer g.calls.add(req.env.Caller.KeyID, req.env.RequestID, revoke)()
	reply, err := g.request(ctx, t, req)
	if t.server != nil && (errors.Is(err, nats.ErrNoResponders) || err == nil && t.refused(reply)) {
		t = viaRouter // target.go: the router answers a refused direct send
		reply, err = g.request(ctx, t, req)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, t.waitError(ctx, req)
		}
		return nil, t.failure(err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	return reply.Data, nil
}

// request sends req to t and waits for the reply.
func (g *Ingress) request(ctx context.Context, t target, req *request) (*nats.Msg, error) {
	m := &nats.Msg{Subject: t.subject, Data: req.body, Header: req.env.Header()}
	injectTrace(ctx, m.Header)
	if g.workers != nil {
		return g.workers.Request(ctx, m) // with liveness, to the workers or the router
	}
	return g.nc.RequestMsgWithContext(ctx, m)
}

func revokedError(req *request) *bus.Error {
	return bus.Errorf(bus.ErrKeyRevoked, "%s was revoked while this call ran; the call was cancelled", req.env.Caller.Who())
}
