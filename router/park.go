package router

import (
	"context"
	"errors"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// resume sends the retry of a parked call (bus/era_park.go) to the worker
// replica that holds it, rather than to the server's queue group: the
// upstream call waits there for the client's input. A replica that is gone
// (it restarted, or the park expired with it) answers nothing: the client
// is told to start over.
func (r *Router) resume(ctx context.Context, ref bus.ParkRef, body []byte, h nats.Header, s bus.ServerSpec, limit time.Duration) ([]byte, *bus.Error) {
	reply, err := r.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: ref.Subject(), Data: body, Header: h})
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, bus.Errorf(bus.ErrInvalidParams, "requestState names a call of server %q that is no longer waiting for input (its worker replica is gone): call again without it", s.Name)
	}
	if err != nil {
		return nil, bus.WorkerError(s, limit, err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	return reply.Data, nil
}
