package router

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// rootsTimeout bounds the delivery of notifications/roots/list_changed to one
// server's worker.
const rootsTimeout = 2 * time.Second

// clientMessage handles what a client sends that is not a request. The answer
// is always empty, so the ingress answers 202.
//
//   - a response to a server-to-client request (its id made by
//     bus.ServerRequestID) goes, as it came, to the worker that asked;
//     any other response is dropped (logged at debug);
//   - notifications/cancelled becomes a bus.CancelRequest for the workers;
//   - notifications/roots/list_changed goes to every server of the session;
//   - other notifications (initialized, ...) are acknowledged.
func (r *Router) clientMessage(ctx context.Context, req micro.Request, env bus.Envelope, msg *bus.Message) ([]byte, *bus.Error) {
	switch {
	case msg.IsResponse():
		subject, ok := bus.ServerRequestReplySubject(msg.ID)
		if !ok {
			r.log.Debug("dropping a client response to no request of the gateway", "request_id", env.RequestID)
			return nil, nil
		}
		if err := r.nc.PublishMsg(&nats.Msg{Subject: subject, Data: req.Data(), Header: nats.Header(req.Headers())}); err != nil {
			r.log.Warn("relaying a client response to its worker failed", "request_id", env.RequestID, "err", err)
		}
	case msg.Method == "notifications/cancelled":
		r.cancel(env, msg)
	case msg.Method == "notifications/roots/list_changed":
		r.rootsChanged(ctx, req, env)
	}
	return nil, nil
}

// cancel publishes the request a client cancelled for the workers to stop.
func (r *Router) cancel(env bus.Envelope, msg *bus.Message) {
	var p struct {
		RequestID json.RawMessage `json:"requestId"`
		Reason    string          `json:"reason"`
	}
	if json.Unmarshal(msg.Params, &p) != nil || len(p.RequestID) == 0 {
		r.log.Debug("ignoring notifications/cancelled without params.requestId", "request_id", env.RequestID)
		return
	}
	data, _ := json.Marshal(bus.CancelRequest{Session: env.Session, KeyID: env.Caller.KeyID, ID: p.RequestID, Reason: p.Reason})
	if err := r.nc.Publish(bus.SubjectCancelRequest, data); err != nil {
		r.log.Warn("publishing a cancellation failed", "request_id", env.RequestID, "err", err)
	}
}

// rootsChanged tells the workers of every server of the session, in
// parallel, that the client's roots changed. It does not wait for them.
func (r *Router) rootsChanged(ctx context.Context, req micro.Request, env bus.Envelope) {
	one, many, e := r.resolve(env)
	if e != nil {
		r.log.Debug("notifications/roots/list_changed reaches no server", "request_id", env.RequestID, "err", e.Message)
		return
	}
	if many == nil {
		many = []bus.ServerSpec{one}
	}
	h, body := nats.Header(req.Headers()), req.Data()
	for _, s := range many {
		go func() {
			if _, e := r.ask(ctx, h, env, s, bus.ToolRPC(s.Name), body, rootsTimeout, 0); e != nil {
				r.log.Debug("notifications/roots/list_changed not delivered", "request_id", env.RequestID, "server", s.Name, "err", e.Message)
			}
		}()
	}
}
