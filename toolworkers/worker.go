// Package toolworkers holds the tool workers: one NATS micro service per upstream
// MCP server, in a queue group per server so replicas share the load. A worker is
// the only place a server's credentials exist; it keeps one upstream session open
// per replica and relays JSON-RPC results byte for byte.
package toolworkers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"
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
	// Servers, if set, lists every server name, so x-mcp-{server}-{header}
	// matches the longest name (server names may contain '-').
	Servers *bus.ServerCache
	// JetStream, if set, holds the OAuth2 token bucket shared by replicas.
	JetStream jetstream.JetStream
	// AllowAPIStdio lets a stdio server that did not come from the config file
	// run; off by default, since it means running a command given over an API.
	AllowAPIStdio bool
	// TracerProvider makes the worker's spans (tracing.go); nil: the global one.
	TracerProvider trace.TracerProvider
	// Metrics, if set, records this worker's calls and exposes its limiter and
	// breaker state (metrics.go); one Metrics serves every worker of a process.
	Metrics *Metrics
}

// Worker serves one upstream server on the bus.
type Worker struct {
	up      *config.Upstream
	nc      *nats.Conn
	svc     micro.Service
	pool    *bus.Pool
	log     *slog.Logger // carries server=<name>
	rootLog *slog.Logger // for clients that add server themselves
	filter  toolFilter
	servers *bus.ServerCache
	extra   map[string]bool // extra_headers, canonical
	static  map[string]bool // static_headers names, canonical

	base    *http.Transport // this replica's connection pool
	hc      *http.Client    // base wrapped with the credential transports
	version string
	client  upstream     // the shared session, for callers without own credentials
	creds   *credClients // sessions for callers with per-request credentials
	limit   *limiter
	breaker *breaker
	// inflight maps request ids to the cancel of their upstream call, so a
	// cancellation published on the bus (a revoked key) stops them.
	inflight sync.Map
	cancels  *nats.Subscription
	tracer   trace.Tracer   // tracing.go
	usage    usagePublisher // usage.go
	metrics  *Metrics
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
	if up.Transport == "stdio" && up.Source != "config" && !o.AllowAPIStdio {
		return nil, fmt.Errorf("worker for server %q: stdio servers run a command on this host, so only the config file may define them (this one came from %q)", spec.Name, up.Source)
	}
	w := &Worker{
		up:      up,
		nc:      nc,
		pool:    bus.NewPool(o.MaxInFlight),
		log:     o.Log.With("server", up.Name),
		rootLog: o.Log,
		filter:  newToolFilter(up.AllowedTools, up.DisallowedTools),
		servers: o.Servers,
		extra:   map[string]bool{},
		static:  map[string]bool{},
		version: bus.LatestProtocolVersion,
		limit:   newLimiter(up.Name, up.MaxConcurrent, up.MaxQueued),
		breaker: newBreaker(up.Name, up.BreakerThreshold, up.BreakerCooldown),
		tracer:  newTracer(o.TracerProvider),
		metrics: o.Metrics,
	}
	if up.SpecVersion != "" {
		w.version = up.SpecVersion // the operator pinned a revision
	}
	for _, h := range up.ExtraHeaders {
		w.extra[h] = true
	}
	for k := range spec.StaticHeaders {
		w.static[http.CanonicalHeaderKey(k)] = true
	}
	if err := w.credentialTransports(o); err != nil {
		return nil, err
	}
	w.client = w.newUpstream(up.Header)
	w.creds = newCredClients(func(perRequest http.Header) upstream { return w.newUpstream(w.mergeHeaders(perRequest)) })

	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.ServiceWorker,
		Version:     Version,
		Description: "tool worker for upstream MCP server " + up.Name,
		Metadata:    map[string]string{"server": up.Name, "transport": up.Transport},
		QueueGroup:  bus.ToolQueue(up.Name),
	})
	if err != nil {
		w.client.Close()
		return nil, err
	}
	if err := svc.AddEndpoint("rpc", micro.HandlerFunc(w.handOff(w.handleRPC)), micro.WithEndpointSubject(bus.ToolRPC(up.Name))); err != nil {
		svc.Stop()
		w.client.Close()
		return nil, err
	}
	if err := svc.AddEndpoint("info", micro.HandlerFunc(w.handOff(w.handleInfo)), micro.WithEndpointSubject(bus.ToolInfo(up.Name))); err != nil {
		svc.Stop()
		w.client.Close()
		return nil, err
	}
	w.svc = svc
	w.metrics.add(w)
	w.cancels, err = nc.Subscribe(bus.SubjectCancel, func(m *nats.Msg) {
		if c, ok := w.inflight.Load(string(m.Data)); ok {
			w.log.Info("cancelling an in-flight call", "request_id", string(m.Data))
			c.(context.CancelFunc)()
		}
	})
	if err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

// credentialTransports builds the replica's HTTP client: the shared pool,
// wrapped by the OAuth2 token transport and, last before the network, the
// SigV4 signer (so the signature covers every header set before it).
func (w *Worker) credentialTransports(o Options) error {
	w.base = newBaseTransport()
	var rt http.RoundTripper = w.base
	if w.up.AWS != nil {
		a := w.up.AWS
		rt = newSigV4Transport(w.up.Name, rt, sigv4Config{AccessKeyID: a.AccessKeyID, SecretAccessKey: a.SecretAccessKey,
			SessionToken: a.SessionToken, Region: a.Region, Service: a.Service})
	}
	if w.up.OAuth2 != nil {
		var kv jetstream.KeyValue
		if o.JetStream != nil {
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			kv, err = oauthTokenBucket(ctx, o.JetStream)
			if err != nil {
				return fmt.Errorf("worker for server %q: kv bucket %s: %w", w.up.Name, bus.BucketOAuthTokens, err)
			}
		}
		c := w.up.OAuth2
		src := newOAuth2Source(w.up.Name, oauth2Config{TokenURL: c.TokenURL, ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: c.Scopes},
			kv, &http.Client{Transport: w.base, Timeout: 30 * time.Second}, w.log)
		rt = newOAuth2Transport(rt, src)
	}
	w.hc = &http.Client{Transport: rt, CheckRedirect: refuseCrossOrigin}
	return nil
}

// refuseCrossOrigin refuses redirects to another scheme, host or port: Go carries
// custom headers (x-api-key, static_headers) across redirects, and the SigV4
// signer would sign for the new host, so a server could send the configured
// credential elsewhere.
func refuseCrossOrigin(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if from := via[0].URL; req.URL.Scheme != from.Scheme || req.URL.Host != from.Host {
		return errors.New("upstream redirected to another origin; refused so its credentials stay with it")
	}
	return nil
}

// newUpstream makes a client for this server speaking its transport, sending
// header on every HTTP request.
func (w *Worker) newUpstream(header http.Header) upstream {
	switch w.up.Transport {
	case "sse":
		hc := &http.Client{Transport: &fixedHeaders{base: w.hc.Transport, header: header}}
		return newSSEClient(w.up.Name, w.up.URL.String(), hc, w.version, w.rootLog)
	case "stdio":
		return newStdioClient(w.up.Name, stdioSpec{Command: w.up.Command, Args: w.up.Args, Env: w.up.Env}, w.version, w.rootLog)
	default:
		return newStreamableClient(w.up.Name, w.up.URL.String(), header, w.version, w.hc)
	}
}

// fixedHeaders sets a server's headers on requests made by a transport we do
// not drive ourselves (the go-sdk's legacy SSE client).
type fixedHeaders struct {
	base   http.RoundTripper
	header http.Header
}

func (f *fixedHeaders) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range f.header {
		r.Header[k] = v
	}
	injectTrace(r) // tracing.go
	return f.base.RoundTrip(r)
}

// Stop deregisters the worker, ends its upstream sessions (and stdio process)
// and closes its connections.
func (w *Worker) Stop() {
	w.metrics.remove(w)
	if w.svc != nil {
		_ = w.svc.Stop()
	}
	if w.cancels != nil {
		_ = w.cancels.Unsubscribe()
	}
	w.client.Close()
	w.creds.closeAll()
	w.base.CloseIdleConnections()
	w.usage.close()
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
	span := w.startSpan(req.Headers(), env, "initialize", nil)
	defer span.End()
	ctx, cancel := w.callContext(env)
	defer cancel()
	var info json.RawMessage
	err := w.guard(ctx, func() (err error) {
		info, err = span.info(ctx, w.client)
		return err
	})
	if err != nil {
		span.fail(bus.AsError(err))
		w.fail(reply, env, "initialize", err)
		return
	}
	_ = reply.Respond(info)
}

func (w *Worker) handleRPC(req micro.Request, reply bus.Reply) {
	env, msg, derr := bus.DecodeRequest(req)
	if derr != nil {
		_ = reply.Error(derr)
		return
	}
	if !msg.IsRequest() {
		_ = reply.Error(bus.Errorf(bus.ErrInvalidRequest, "tool worker takes requests only, got %q", msg.Method))
		return
	}
	span := w.startSpan(req.Headers(), env, msg.Method, msg.Params)
	defer span.End()
	callerTools, callerLimited := env.Caller.Permissions.Tools[w.up.Name]
	if msg.Method == "tools/call" && (w.filter.active() || callerLimited) {
		name := toolName(msg.Params)
		if !w.filter.allows(name) {
			_ = reply.Error(span.fail(bus.Errorf(bus.ErrToolNotAllowed, "tool %q is not allowed on server %q by the gateway's allowed_tools/disallowed_tools", name, w.up.Name)))
			return
		}
		if callerLimited && !slices.Contains(callerTools, name) {
			_ = reply.Error(span.fail(bus.Errorf(bus.ErrNotPermitted, "key '%s' may not call tool '%s' on server '%s'", env.Caller.Name(), name, w.up.Name)))
			return
		}
	}
	ctx, cancel := w.callContext(env)
	defer cancel()
	if env.RequestID != "" {
		w.inflight.Store(env.RequestID, cancel)
		defer w.inflight.Delete(env.RequestID)
	}

	params, relay := w.legParams(msg.Params, env)
	client := w.client
	if perRequest := w.perRequestHeaders(env.Forward); perRequest != nil && w.up.Transport != "stdio" {
		client = w.creds.get(perRequest)
	}
	start := time.Now()
	var resp *bus.Message
	err := w.guard(ctx, func() (err error) {
		resp, err = span.call(ctx, client, msg.Method, params, relay)
		if err != nil && retryable(msg.Method, err) && ctx.Err() == nil {
			w.log.Info("retrying a list call once after a transport error", "request_id", env.RequestID, "method", msg.Method, "err", bus.AsError(err).Message)
			resp, err = span.call(ctx, client, msg.Method, params, relay)
		}
		return err
	})
	rec := callRecord{env: env, method: msg.Method, start: start, bytesIn: len(req.Data())}
	if msg.Method == "tools/call" {
		rec.tool = toolName(msg.Params)
	}
	if err != nil {
		rec.status, rec.errCode = "failed", bus.AsError(err).Kind.Code
		w.observe(rec)
		span.fail(bus.AsError(err))
		w.fail(reply, env, msg.Method, err)
		return
	}
	span.answered(resp.Error)
	var out []byte
	if len(resp.Error) > 0 {
		out = bus.RawErrorResponse(msg.ID, resp.Error)
	} else {
		result := resp.Result
		if msg.Method == "tools/list" && (w.filter.active() || callerLimited) {
			result = filterTools(result, func(name string) bool {
				return w.filter.allows(name) && (!callerLimited || slices.Contains(callerTools, name))
			})
		}
		out = bus.ResultResponse(msg.ID, result)
	}
	rec.status, rec.bytesOut = "ok", len(out)
	if len(resp.Error) > 0 {
		rec.status, rec.errCode = "error", rpcErrorCode(resp.Error)
	}
	if max := w.nc.MaxPayload(); int64(len(out)) > max-4096 {
		rec.status, rec.errCode = "failed", bus.ErrUpstreamProtocol.Code
		w.observe(rec)
		w.fail(reply, env, msg.Method, span.fail(bus.Errorf(bus.ErrUpstreamProtocol,
			"the answer of upstream server %q is %d bytes, over the bus message limit of %d bytes", w.up.Name, len(out), max)))
		return
	}
	w.observe(rec)
	if err := reply.Respond(out); err != nil {
		w.log.Warn("reply to router failed", "request_id", env.RequestID, "err", err)
	}
	w.log.Debug("upstream call", "request_id", env.RequestID, "method", msg.Method, "duration", time.Since(start))
}

// guard runs one upstream call under the server's concurrency limit and
// circuit breaker.
func (w *Worker) guard(ctx context.Context, call func() error) error {
	release, err := w.limit.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	done, refused := w.breaker.allow()
	if refused != nil {
		return refused
	}
	err = call()
	if errors.Is(ctx.Err(), context.Canceled) {
		done(errCancelled)
	} else {
		done(err)
	}
	return err
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
