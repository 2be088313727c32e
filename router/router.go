// Package router is the MCP brain between the ingress and the tool workers: it
// answers initialize and ping itself, resolves which servers a message is for
// (applying the public/internal rule, then the key's permissions), forwards a
// request for one server to its workers byte for byte and relays their answer
// verbatim, and serves several servers as one (aggregate.go,
// docs/AGGREGATION.md). Client responses and notifications go where they
// belong (clientmsg.go).
package router

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/internal/pool"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel/trace"
)

// Options tunes the router.
type Options struct {
	Version string
	Log     *slog.Logger
	// MaxInFlight bounds concurrent routed requests (default 1024).
	MaxInFlight int
	// InfoTimeout bounds the capability lookup during initialize (default 5s).
	InfoTimeout time.Duration
	// TracerProvider makes the router's spans (tracing.go); nil: the global one.
	TracerProvider trace.TracerProvider
	// Separator joins a server's prefix and a tool or prompt name when several
	// servers are aggregated (default "__", config.DefaultToolPrefixSeparator).
	Separator string
	// ListTimeout bounds each server's part of an aggregated list (default 5s):
	// a slower server is left out and named in the answer.
	ListTimeout time.Duration
	// Audit is general_settings.mcp_audit.enabled: a tools/call refused for
	// a server the caller may not use is recorded in the audit stream
	// (audit.go), its arguments as AuditArguments says.
	Audit          bool
	AuditArguments bus.AuditArguments
}

// Router routes downstream JSON-RPC messages.
type Router struct {
	nc    *nats.Conn
	cache *servercache.Cache
	pool  *pool.Pool
	log   *slog.Logger
	o     Options
	// tracer makes the router's spans (tracing.go).
	tracer trace.Tracer
	// cat maps aggregated names and URIs to servers (catalog.go).
	cat *catalog
	// workers sends requests to tool workers with liveness (bus/liveness.go);
	// live acknowledges and keeps alive the requests the router takes.
	workers *bus.WorkerRequester
	live    *bus.Responder
	// tstore is the tasks bucket (tasks.go).
	tstore taskStore
}

// DefaultSeparator and DefaultListTimeout apply when Options leaves them unset.
const (
	DefaultSeparator   = "__"
	DefaultListTimeout = 5 * time.Second
)

// Start registers the router's micro service.
func Start(nc *nats.Conn, cache *servercache.Cache, o Options) (micro.Service, error) {
	if o.Version == "" {
		o.Version = version.Version
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 1024
	}
	if o.InfoTimeout <= 0 {
		o.InfoTimeout = 5 * time.Second
	}
	if o.Separator == "" {
		o.Separator = DefaultSeparator
	}
	if o.ListTimeout <= 0 {
		o.ListTimeout = DefaultListTimeout
	}
	r := &Router{nc: nc, cache: cache, pool: pool.New(o.MaxInFlight), log: o.Log, o: o, tracer: bus.Tracer(o.TracerProvider, tracerName), cat: newCatalog()}
	workers, err := bus.NewWorkerRequester(nc, o.Log)
	if err != nil {
		return nil, err
	}
	r.workers = workers
	r.live = bus.NewResponder(nc)
	// Every replica hears every server's list changes (no queue group).
	sub, err := nc.Subscribe(bus.SubjectNotifyAll, r.onNotify)
	if err != nil {
		workers.Close()
		return nil, err
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.ServiceRouter,
		Version:     o.Version,
		Description: "routes MCP messages to tool workers",
		Endpoint: &micro.EndpointConfig{
			Subject: bus.SubjectRouterRPC,
			Handler: micro.HandlerFunc(func(req micro.Request) {
				ok, finished := r.live.Take(req)
				if !ok {
					return // taken too late: its sender has moved on
				}
				if !r.pool.Go(func() { defer finished(); r.handle(req, r.live.Reply(req)) }) {
					finished()
					bus.RespondError(req, bus.Errorf(bus.ErrOverloaded, "gateway router is at its limit of concurrent requests"))
				}
			}),
		},
	})
	if err != nil {
		_ = sub.Unsubscribe()
		workers.Close()
		return nil, err
	}
	return &service{Service: svc, sub: sub, workers: workers, live: r.live}, nil
}

// service is the router's micro service; stopping it also ends the
// subscription to server notifications and the workers' replies.
type service struct {
	micro.Service
	sub     *nats.Subscription
	workers *bus.WorkerRequester
	live    *bus.Responder
}

func (s *service) Stop() error {
	_ = s.sub.Unsubscribe()
	err := s.Service.Stop()
	s.workers.Close()
	s.live.Close()
	return err
}

// handle runs on the pool; it answers through reply, never through req.
func (r *Router) handle(req micro.Request, reply bus.Reply) {
	env, msg, derr := bus.DecodeRequest(req)
	if derr != nil {
		_ = reply.Error(derr)
		return
	}
	ctx, span := r.startSpan(req.Headers(), env, msg)
	defer span.End()
	out, rerr := r.route(ctx, req, env, msg)
	if rerr != nil {
		bus.SpanFailed(span, rerr)
		_ = reply.Error(rerr)
		return
	}
	_ = reply.Respond(out)
}

func (r *Router) route(ctx context.Context, req micro.Request, env bus.Envelope, msg *bus.Message) ([]byte, *bus.Error) {
	if !msg.IsRequest() {
		return r.clientMessage(ctx, req, env, msg) // clientmsg.go
	}
	if msg.Method == bus.MethodPing {
		return bus.ResultResponse(msg.ID, json.RawMessage(`{}`)), nil
	}
	if msg.Method == bus.MethodServerDiscover && !env.Modern() {
		// An older client's probe (the legacy SSE transport, or a gateway
		// with the stateless protocol off): it falls back to initialize.
		return nil, bus.Errorf(bus.ErrMethodNotFound, "server/discover is a method of MCP %s, which this request does not speak: send initialize", bus.FirstModernVersion)
	}
	if msg.Method == bus.MethodSubscriptionsListen {
		// The ingress serves a stateless-era listen itself (it holds the
		// stream); one that reaches the router is of the session era.
		return nil, bus.Errorf(bus.ErrMethodNotFound, "subscriptions/listen is a method of MCP %s, which this request does not speak: use the GET stream of a session", bus.FirstModernVersion)
	}
	server, many, e := r.resolve(env) // resolve.go
	if e != nil {
		r.auditRefusal(env, msg, e) // audit.go
		return nil, e
	}
	if bus.SearchesTools(env, msg.Method) {
		return r.toolSearch(ctx, nats.Header(req.Headers()), req.Data(), env, msg, server, many) // toolsearch.go
	}
	if bus.TaskMethod(msg.Method) {
		if out, e, handled := r.task(ctx, env, msg, server, many); handled { // tasks.go
			return out, e
		}
	}
	if many != nil {
		return r.aggregate(ctx, nats.Header(req.Headers()), req.Data(), env, msg, many) // aggregate.go
	}
	switch msg.Method {
	case bus.MethodInitialize:
		return r.initialize(ctx, env, msg, server)
	case bus.MethodServerDiscover:
		return r.discover(ctx, env, msg, server) // discover.go
	}
	return r.forward(ctx, nats.Header(req.Headers()), req.Data(), env, server)
}

// forward sends body (a request) with headers h to the server's workers and
// relays the answer. The worker enforces the server's timeout; the router
// waits a little longer so the worker's own, more precise error normally wins.
func (r *Router) forward(ctx context.Context, h nats.Header, body []byte, env bus.Envelope, s bus.ServerSpec) ([]byte, *bus.Error) {
	if e := bus.DrainedError(s); e != nil {
		return nil, e
	}
	deadline, limit := bus.CallDeadline(s, env, time.Now())
	out := r.legHeader(h, s, 2)
	out[bus.HeaderDeadline] = []string{formatMillis(deadline)}
	toWorker(ctx, s.Name, out)
	ctx, cancel := context.WithDeadline(context.Background(), deadline.Add(bus.CallGrace))
	defer cancel()
	if params, _, _ := bus.Field(body, "params"); len(params) > 0 {
		if ref, parked := bus.ParkedCall(params); parked && ref.Server == s.Name {
			return r.resume(ctx, ref, body, out, s, limit) // park.go
		}
	}
	reply, err := r.workers.Request(ctx, &nats.Msg{Subject: bus.ToolRPC(s.Name), Data: body, Header: out})
	if err != nil {
		return nil, bus.WorkerError(s, limit, err)
	}
	if e := bus.ReplyError(reply); e != nil {
		return nil, e
	}
	return reply.Data, nil
}
