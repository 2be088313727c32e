// Package toolworkers holds the tool workers: one NATS micro service per upstream
// MCP server, in a queue group per server so replicas share the load. A worker is
// the only place a server's credentials exist; it keeps one upstream session open
// per replica and relays JSON-RPC results byte for byte.
package toolworkers

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

// Version is reported to upstreams in clientInfo and in the micro service info.
var Version = "0.1.0"

// Options tunes a worker.
type Options struct {
	// MaxInFlight bounds concurrent upstream calls of this replica (default 256);
	// beyond it calls fail at once with ErrOverloaded rather than queue unseen.
	MaxInFlight int
	Log         *slog.Logger
	// Env resolves os.environ/ references in the server record (default os.LookupEnv).
	Env config.LookupEnv
}

// Worker serves one upstream server on the bus.
type Worker struct {
	up     *config.Upstream
	client *streamableClient
	nc     *nats.Conn
	svc    micro.Service
	pool   *bus.Pool
	log    *slog.Logger
	filter toolFilter
}

// Start provisions spec (resolving its credentials in this process) and registers
// the worker's micro service. The upstream session opens on first use.
func Start(nc *nats.Conn, spec bus.ServerSpec, o Options) (*Worker, error) {
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	up, err := config.Provision(spec, o.Env)
	if err != nil {
		return nil, fmt.Errorf("worker for server %q: %w", spec.Name, err)
	}
	if up.Transport != "http" {
		return nil, fmt.Errorf("worker for server %q: transport %q is not supported yet", spec.Name, up.Transport)
	}
	version := bus.LatestProtocolVersion
	if up.SpecVersion != "" {
		version = up.SpecVersion // the operator pinned a revision
	}
	w := &Worker{
		up:     up,
		client: newStreamableClient(up.Name, up.URL.String(), up.Header, version),
		nc:     nc,
		pool:   bus.NewPool(o.MaxInFlight),
		log:    o.Log.With("server", up.Name),
		filter: newToolFilter(up.AllowedTools, up.DisallowedTools),
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.ServiceWorker,
		Version:     Version,
		Description: "tool worker for upstream MCP server " + up.Name,
		Metadata:    map[string]string{"server": up.Name},
		QueueGroup:  bus.ToolQueue(up.Name),
	})
	if err != nil {
		return nil, err
	}
	if err := svc.AddEndpoint("rpc", micro.HandlerFunc(w.handOff(w.handleRPC)), micro.WithEndpointSubject(bus.ToolRPC(up.Name))); err != nil {
		svc.Stop()
		return nil, err
	}
	if err := svc.AddEndpoint("info", micro.HandlerFunc(w.handOff(w.handleInfo)), micro.WithEndpointSubject(bus.ToolInfo(up.Name))); err != nil {
		svc.Stop()
		return nil, err
	}
	w.svc = svc
	return w, nil
}

// Stop deregisters the worker and ends its upstream session.
func (w *Worker) Stop() {
	if w.svc != nil {
		_ = w.svc.Stop()
	}
	w.client.Close()
}

// handOff runs h on the pool so the subscription goroutine is free at once; h
// answers through the bus.Reply, never through req.
func (w *Worker) handOff(h func(micro.Request, bus.Reply)) func(micro.Request) {
	return func(req micro.Request) {
		if !w.pool.Go(func() { h(req, bus.NewReply(w.nc, req)) }) {
			bus.RespondError(req, bus.Errorf(bus.ErrOverloaded, "worker for server %q is at its limit of concurrent calls", w.up.Name))
		}
	}
}

// callContext bounds one upstream call by the server's timeout and the caller's
// deadline, whichever comes first.
func (w *Worker) callContext(env bus.Envelope) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(w.up.Timeout)
	if !env.Deadline.IsZero() && env.Deadline.Before(deadline) {
		deadline = env.Deadline
	}
	return context.WithDeadline(context.Background(), deadline)
}

func (w *Worker) handleInfo(req micro.Request, reply bus.Reply) {
	env, _ := bus.ReadEnvelope(nats.Header(req.Headers()))
	ctx, cancel := w.callContext(env)
	defer cancel()
	info, err := w.client.Info(ctx)
	if err != nil {
		w.fail(reply, env, "initialize", err)
		return
	}
	_ = reply.Respond(info)
}

func (w *Worker) handleRPC(req micro.Request, reply bus.Reply) {
	env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
	if err != nil {
		_ = reply.Error(bus.Errorf(bus.ErrBadRequest, "%v", err))
		return
	}
	msg, perr := bus.ParseMessage(req.Data())
	if perr != nil {
		_ = reply.Error(perr)
		return
	}
	if !msg.IsRequest() {
		_ = reply.Error(bus.Errorf(bus.ErrInvalidRequest, "tool worker takes requests only, got %q", msg.Method))
		return
	}
	if msg.Method == "tools/call" && w.filter.active() {
		if name := toolName(msg.Params); !w.filter.allows(name) {
			_ = reply.Error(bus.Errorf(bus.ErrToolNotAllowed, "tool %q is not allowed on server %q by the gateway's allowed_tools/disallowed_tools", name, w.up.Name))
			return
		}
	}
	ctx, cancel := w.callContext(env)
	defer cancel()

	params, relay := w.legParams(msg.Params, env)
	start := time.Now()
	resp, err := w.client.Call(ctx, msg.Method, params, relay)
	if err != nil {
		w.fail(reply, env, msg.Method, err)
		return
	}
	var out []byte
	if len(resp.Error) > 0 {
		out = bus.RawErrorResponse(msg.ID, resp.Error)
	} else {
		result := resp.Result
		if msg.Method == "tools/list" && w.filter.active() {
			result = w.filter.list(result)
		}
		out = bus.ResultResponse(msg.ID, result)
	}
	if max := w.nc.MaxPayload(); int64(len(out)) > max-4096 {
		w.fail(reply, env, msg.Method, bus.Errorf(bus.ErrUpstreamProtocol,
			"the answer of upstream server %q is %d bytes, over the bus message limit of %d bytes", w.up.Name, len(out), max))
		return
	}
	if err := reply.Respond(out); err != nil {
		w.log.Warn("reply to router failed", "request_id", env.RequestID, "err", err)
	}
	w.log.Debug("upstream call", "request_id", env.RequestID, "method", msg.Method, "duration", time.Since(start))
}

func (w *Worker) fail(reply bus.Reply, env bus.Envelope, method string, err error) {
	e := bus.AsError(err)
	if e.Kind == bus.ErrUpstreamTimeout {
		e = bus.Errorf(bus.ErrUpstreamTimeout, "upstream server %q did not answer %s within %s", w.up.Name, method, w.up.Timeout)
	}
	w.log.Warn("upstream call failed", "request_id", env.RequestID, "method", method, "code", e.Kind.Code, "err", e.Message)
	_ = reply.Error(e)
}

// legParams rewrites the caller's progress token into one unique to this
// upstream leg (many callers share one upstream session, so their tokens could
// collide) and returns the notification relay that maps it back.
func (w *Worker) legParams(params json.RawMessage, env bus.Envelope) (json.RawMessage, notifyFunc) {
	if env.Stream == "" {
		return params, nil
	}
	rewritten, original, ok := rewriteProgressToken(params, "mcpbus-"+nuid.Next())
	if ok {
		params = rewritten
	}
	return params, func(method string, p json.RawMessage) {
		switch method {
		case "notifications/progress":
			if !ok {
				return
			}
			p = restoreProgressToken(p, original)
		case "notifications/message":
		default:
			return
		}
		if err := w.nc.Publish(env.Stream, bus.Notification(method, p)); err != nil {
			w.log.Debug("relay notification failed", "request_id", env.RequestID, "err", err)
		}
	}
}
