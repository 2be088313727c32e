package toolworkers

// External guards (docs/GUARDS.md): a process serving mcpbus.v1.guard.<name>
// as a bus user with the guards role, asked by request-reply with a
// bus.GuardRequest and answering a bus.GuardReply. One that does not answer
// in its timeout, is not there, or answers something unreadable fails the
// call closed (MCPBUS_GUARD_UNAVAILABLE naming it) or lets it through (fail:
// open), and the audit record says which and why.

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
)

// askGuard asks external guard g about payload in phase.
func (w *Worker) askGuard(ctx context.Context, g config.Guard, phase string, env *bus.Envelope, tool string, payload json.RawMessage) guardVerdict {
	req := bus.GuardRequest{Phase: phase, RequestID: env.RequestID, Server: w.up.Name, Tool: tool,
		Caller: bus.NewGuardCaller(env.Caller, env.IPClass)}
	if phase == bus.GuardPhaseResult {
		req.Result = payload
	} else {
		req.Arguments = payload
	}
	data, err := json.Marshal(req)
	if err != nil {
		return guardFailed(g, phase, "the "+what(phase)+" could not be sent to it (not JSON)")
	}
	if int64(len(data)) > w.nc.MaxPayload()-4096 {
		return guardFailed(g, phase, whatIs(phase)+" too large to send to it over the bus")
	}
	cctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	m, err := w.nc.RequestWithContext(cctx, bus.GuardSubject(g.Name), data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return guardFailed(g, phase, "no process serves "+bus.GuardSubject(g.Name))
	case err != nil && ctx.Err() != nil:
		return guardFailed(g, phase, "the call ended while waiting for it")
	case err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)):
		return guardFailed(g, phase, "did not answer in "+g.Timeout.String())
	case err != nil:
		return guardFailed(g, phase, "could not be asked: "+bus.Shorten(err.Error(), 120))
	}
	r, err := bus.ParseGuardReply(m.Data, phase)
	if err != nil {
		return guardFailed(g, phase, err.Error())
	}
	switch r.Decision {
	case bus.GuardBlock:
		return guardVerdict{decision: bus.GuardBlock, reason: r.Reason, err: bus.GuardBlocked(g.Name, phase, r.Reason)}
	case bus.GuardModify:
		out := r.Arguments
		if phase == bus.GuardPhaseResult {
			out = r.Result
		}
		return guardVerdict{decision: bus.GuardModify, reason: r.Reason, payload: out}
	}
	return guardVerdict{decision: bus.GuardPass, reason: r.Reason}
}

// guardFailed is the verdict when guard g gave no usable answer: the call
// proceeds (fail open) or is refused naming the guard (fail closed).
func guardFailed(g config.Guard, phase, reason string) guardVerdict {
	if g.FailOpen {
		return guardVerdict{decision: bus.GuardFailOpen, reason: reason}
	}
	what := "the call was not sent upstream"
	if phase == bus.GuardPhaseResult {
		what = "the tool's result was withheld"
	}
	return guardVerdict{decision: bus.GuardFailClosed, reason: reason,
		err: bus.Errorf(bus.ErrGuardUnavailable, "guard %q %s; %s (the guard fails closed)", g.Name, reason, what)}
}
