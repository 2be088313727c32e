package ingress

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// relayBus is the one loop of the routes that are not MCP but answer from
// a service on the bus with a JSON answer or a stream of events (the LLM
// routes, llm.go; A2A, a2a.go): send the request with a reply subject of
// this ingress's stream hub and, for a stream, the POST's stream subject
// in the envelope; hand each event a worker sends as sender to the sink as
// it comes, then the answer. A client that leaves, a revoked key or the
// wait running out cancels the call wherever it runs (bus.SubjectCancel).

// busSink receives one relayed request's events and its end.
type busSink interface {
	event(data []byte)
	fail(e *bus.Error)
	// answer handles the reply (an error or not).
	answer(reply *nats.Msg)
}

// busRelay is one request to relay.
type busRelay struct {
	subject string
	env     bus.Envelope
	body    []byte
	stream  bool
	header  nats.Header // besides the envelope's
	sender  string      // the token events come with
	what    string      // names the answerer in errors ("the model", "agent x")
}

// relayBus sends rq and delivers what comes back to sink.
func (g *Ingress) relayBus(r *http.Request, rq busRelay, sink busSink) {
	if g.hub == nil {
		sink.fail(bus.Errorf(bus.ErrServiceUnavailable, "this ingress could not subscribe to its stream subjects on the bus; see its log"))
		return
	}
	ctx, cancel := context.WithDeadline(r.Context(), time.Now().Add(g.o.MaxWait))
	defer cancel()
	ctx, revoke := context.WithCancelCause(ctx)
	defer revoke(nil)
	env := rq.env
	defer g.calls.add(env.Caller.KeyID, env.RequestID, revoke)()
	env.Deadline, _ = ctx.Deadline()

	ps := g.hub.openStream()
	defer g.hub.closeStream(ps)
	if rq.stream {
		env.Stream = ps.streamTo
	}
	m := &nats.Msg{Subject: rq.subject, Reply: ps.replyFor(rq.sender), Data: rq.body, Header: env.Header()}
	for k, v := range rq.header {
		m.Header[k] = v
	}
	injectTrace(ctx, m.Header)
	if err := g.nc.PublishMsg(m); err != nil {
		sink.fail(bus.RequestError(rq.what, err))
		return
	}
	from := ps.streamTo + "." + rq.sender
	var batch []*nats.Msg
	for {
		select {
		case <-ps.wake:
		case <-ctx.Done():
			_ = g.nc.Publish(bus.SubjectCancel, []byte(env.RequestID))
			if r.Context().Err() == nil {
				sink.fail(waitError(ctx, rq.what, g.o.MaxWait))
			}
			return
		}
		msgs, reply := ps.take(batch)
		batch = msgs
		for _, ev := range msgs {
			if ev.Subject == from { // only the service's workers send events
				sink.event(ev.Data)
			}
		}
		if ps.lost() > 0 {
			sink.fail(bus.Errorf(bus.ErrInternal, "the client read the stream too slowly and events were dropped"))
			return
		}
		if reply != nil {
			sink.answer(reply)
			return
		}
	}
}

// waitError is the error of a wait that ended before the answer.
func waitError(ctx context.Context, what string, wait time.Duration) *bus.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errRevoked):
		return bus.Errorf(bus.ErrKeyRevoked, "the key was revoked while %s answered", what)
	case errors.Is(cause, errShutdown):
		return bus.Errorf(bus.ErrServiceUnavailable, "the gateway stopped before %s answered", what)
	}
	return bus.Errorf(bus.ErrUpstreamTimeout, "%s did not answer within %s", what, wait)
}
