package ingress

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// target is where a request goes: the router, or, when the router would only
// forward it unchanged to one server (bus.Direct: a request other than
// initialize and ping, for exactly one server the caller may use), straight
// to that server's workers. The direct send saves the router's two bus
// deliveries and its work on the hot path (docs/PERFORMANCE.md); the worker
// checks visibility and the key's permissions again, and a message the rule
// does not cover, including every refusal, still gets the router's answer.
type target struct {
	subject string
	// server is the direct target; nil means the router.
	server *bus.ServerSpec
	// limit is the server's call timeout, deadline when the call must end.
	limit    time.Duration
	deadline time.Time
}

// answerer is the sender token t's answer comes with (postStream.replyFor):
// the server's name from its workers, bus.GatewayToken from the router.
func (t target) answerer() string {
	if t.server == nil {
		return bus.GatewayToken
	}
	return t.server.Name
}

// viaRouter is the router as a target.
var viaRouter = target{subject: bus.SubjectRouterRPC}

// target picks where req goes. A direct request carries the deadline the
// router would have set (bus.CallDeadline), but never one past the ingress's
// own wait (Options.MaxWait), in its envelope.
func (g *Ingress) target(req *request) target {
	s, ok := bus.Direct(g.o.Servers, req.env, req.msg)
	if !ok || g.o.RouterOnly {
		return viaRouter
	}
	now := time.Now()
	deadline, limit := bus.CallDeadline(s, req.env, now)
	if most := now.Add(g.o.MaxWait); deadline.After(most) {
		deadline, limit = most, g.o.MaxWait
	}
	req.env.Deadline = deadline
	// Only this server's per-request headers go to its workers.
	req.env.Forward = bus.ForwardFor(req.env.Forward, s, g.o.Servers.Names())
	return target{subject: bus.ToolRPC(s.Name), server: &s, limit: limit, deadline: deadline}
}

// refused reports whether reply is a direct send that the router must answer
// instead: no worker listened, or the worker refused the caller (admits), as
// happens while a server's record changes and the ingress's registry cache has
// not caught up. Nothing reached the upstream, so sending the message again
// through the router is safe, and every refusal keeps the router's one answer.
func (t target) refused(reply *nats.Msg) bool {
	if t.server == nil {
		return false
	}
	if bus.NoResponders(reply) {
		return true
	}
	e := bus.ReplyError(reply)
	return e != nil && (e.Kind == bus.ErrUnknownServer || e.Kind == bus.ErrNotPermitted)
}

// waitUntil is when the ingress stops waiting for t's answer: a direct
// call's deadline plus the grace the router would give it (bus.CallGrace),
// or maxWait from now for the router.
func (t target) waitUntil(maxWait time.Duration) time.Time {
	if t.server == nil {
		return time.Now().Add(maxWait)
	}
	return t.deadline.Add(bus.CallGrace)
}

// failure is the error for a request the target did not answer: for a direct
// send, the router's errors for no worker and for a timeout, and a bus
// failure on this side (503) named as such.
func (t target) failure(err error) *bus.Error {
	switch {
	case t.server == nil && bus.IsLivenessError(err):
		return t.lostError(errors.Is(err, bus.ErrNotTaken))
	case t.server == nil:
		return bus.RequestError("router", err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), bus.IsLivenessError(err):
		return bus.WorkerError(*t.server, t.limit, err)
	default:
		return bus.RequestError(fmt.Sprintf("tool worker for server %q", t.server.Name), err)
	}
}

// replyError reads a gateway error from the target's reply, including the
// server's "no responders" status when nothing listens on the subject.
func (t target) replyError(reply *nats.Msg) *bus.Error {
	if bus.NoResponders(reply) {
		return t.failure(nats.ErrNoResponders)
	}
	return bus.ReplyError(reply)
}

// waitError is the error for a wait that ended before the answer: the key
// was revoked, or the target took too long.
func (t target) waitError(ctx context.Context, req *request) *bus.Error {
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errRevoked):
		return revokedError(req)
	case errors.Is(cause, errShutdown):
		return bus.Errorf(bus.ErrServiceUnavailable, "the gateway stopped before this call finished (its drain time ran out); the call may still complete upstream")
	}
	return t.failure(ctx.Err())
}

// lostError is the error for a request to t whose liveness failed: nobody
// took it (notTaken), or the one running it stopped answering.
func (t target) lostError(notTaken bool) *bus.Error {
	switch {
	case t.server != nil && notTaken:
		return bus.NotTakenError(*t.server)
	case t.server != nil:
		return bus.WorkerLostError(*t.server)
	case notTaken:
		return bus.Errorf(bus.ErrServiceUnavailable, "no gateway router took the request (%d tries); it was not handled", bus.AcceptAttempts)
	}
	return bus.Errorf(bus.ErrServiceUnavailable, "the gateway router handling this request stopped answering")
}
