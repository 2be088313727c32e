// Package toolworkers holds the tool workers: one NATS micro service per upstream
// MCP server, in a queue group per server so replicas share the load. A worker is
// the only place a server's credentials exist; it keeps one upstream session open
// per replica and relays JSON-RPC results byte for byte.
package toolworkers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
	"go.opentelemetry.io/otel/trace"
)

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
	// ConfigServers are the servers of this process's own config file: a
	// stdio record runs only if one of them, by name, has the record's
	// command, args and env (stdio_trust.go). A record on the bus is no proof
	// of where it came from.
	ConfigServers []bus.ServerSpec
	// Secrets opens the sealed credentials of records (bus/secrets.go); nil:
	// a record holding one fails to start, naming the variable to set.
	Secrets *bus.SecretKey
	// TracerProvider makes the worker's spans (tracing.go); nil: the global one.
	TracerProvider trace.TracerProvider
	// Metrics, if set, records this worker's calls and exposes its limiter and
	// breaker state (metrics.go); one Metrics serves every worker of a process.
	Metrics *Metrics
}

// Worker serves one upstream server on the bus.
type Worker struct {
	// detected is the transport found for a server configured without one
	// (detect.go).
	detected detected
	up       *config.Upstream
	nc       *nats.Conn
	svc      micro.Service
	pool     *bus.Pool
	log      *slog.Logger // carries server=<name>
	rootLog  *slog.Logger // for clients that add server themselves
	filter   toolFilter
	servers  *bus.ServerCache
	extra    map[string]bool // extra_headers, canonical
	static   map[string]bool // static_headers names, canonical

	base    *http.Transport // this replica's connection pool
	hc      *http.Client    // base wrapped with the credential transports
	version string
	shared  *link        // the shared session, for callers without own credentials or private capabilities
	creds   *credClients // sessions for callers with per-request credentials
	private privateLinks // sessions for one downstream session each (private.go)
	changes changeNotices
	limit   *limiter
	breaker *breaker
	// inflight maps request ids to their calls (cancel.go), so a
	// cancellation published on the bus (a revoked key, a client's
	// notifications/cancelled) stops them.
	inflight sync.Map
	subs     []*nats.Subscription
	// Server-to-client requests (server_requests.go): this replica's subject
	// token, the sequence of relayed requests, and those awaiting answers.
	s2cToken string
	s2cSeq   atomic.Uint64
	s2cWaits sync.Map // sequence number (decimal) -> *s2cWait
	s2cSub   *nats.Subscription
	tracer   trace.Tracer   // tracing.go
	usage    usagePublisher // usage.go
	metrics  *Metrics
	// Liveness (liveness.go): heartbeats of running calls, and requests
	// dropped for arriving after their accept-by time.
	beats       *bus.Responder
	lateDropped atomic.Uint64 // past their deadline (handleRPC)
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
	spec, err := o.Secrets.Open(spec)
	if err != nil {
		return nil, fmt.Errorf("worker for server %q: %w", spec.Name, err)
	}
	up, err := config.Provision(spec, o.Env)
	if err != nil {
		return nil, fmt.Errorf("worker for server %q: %w", spec.Name, err)
	}
	if up.Transport == "stdio" && !o.AllowAPIStdio {
		if err := namedByConfig(spec, o.ConfigServers); err != nil { // stdio_trust.go
			return nil, fmt.Errorf("worker for server %q: %w", spec.Name, err)
		}
	}
	w := &Worker{
		up:      up,
		nc:      nc,
		beats:   bus.NewResponder(nc),
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
		tracer:  bus.Tracer(o.TracerProvider, tracerName),
		metrics: o.Metrics,
		// nuid: [0-9A-Za-z], one subject token, unique per replica.
		s2cToken: nuid.Next(),
	}
	w.changes = changeNotices{w: w, window: 250 * time.Millisecond}
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
	w.shared = w.newLink(up.Header, "", "", nil)
	w.creds = newCredClients(func(perRequest http.Header) *link { return w.newLink(w.mergeHeaders(perRequest), "", "", nil) })

	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.ServiceWorker,
		Version:     version.Version,
		Description: "tool worker for upstream MCP server " + up.Name,
		Metadata:    map[string]string{"server": up.Name, "transport": up.Transport},
		QueueGroup:  bus.ToolQueue(up.Name),
	})
	if err != nil {
		w.shared.close()
		return nil, err
	}
	w.svc = svc
	w.metrics.add(w)
	// Subscriptions before endpoints: a call must never run before the
	// answers to its server-to-client requests or its cancellation can arrive.
	if err := w.subscribe(); err != nil {
		w.Stop()
		return nil, err
	}
	if err := svc.AddEndpoint("rpc", micro.HandlerFunc(w.handOffLive(w.handleRPC)), micro.WithEndpointSubject(bus.ToolRPC(up.Name))); err != nil {
		w.Stop()
		return nil, err
	}
	if err := svc.AddEndpoint("info", micro.HandlerFunc(w.handOffLive(w.handleInfo)), micro.WithEndpointSubject(bus.ToolInfo(up.Name))); err != nil {
		w.Stop()
		return nil, err
	}
	return w, nil
}

// subscribe listens for cancellations, ended sessions and the answers to
// this replica's server-to-client requests.
func (w *Worker) subscribe() error {
	if err := w.startServerRequests(); err != nil {
		return err
	}
	for subject, h := range map[string]nats.MsgHandler{
		bus.SubjectCancel:            w.onCancel,
		bus.SubjectCancelRequest:     w.onCancelRequest,
		bus.SubjectSessionClosed:     w.onSessionClosed,
		bus.NotifySubject(w.up.Name): w.onNotify,
	} {
		sub, err := w.nc.Subscribe(subject, h)
		if err != nil {
			return err
		}
		w.subs = append(w.subs, sub)
	}
	return nil
}

// onNotify drops the lists another replica heard changed: its notice may
// reach a client, whose next list may come here, before this replica's own
// upstream sessions hear of the change.
func (w *Worker) onNotify(m *nats.Msg) {
	var n struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(m.Data, &n) != nil {
		return
	}
	if stale, ok := listChangedMethods[n.Method]; ok {
		w.eachLink(func(l *link) { l.cache.invalidate(stale...) })
	}
}

// onSessionClosed closes the upstream sessions opened for an ended downstream
// session and drops its resource subscriptions on the shared ones.
func (w *Worker) onSessionClosed(m *nats.Msg) {
	sid := string(m.Data)
	if sid == "" {
		return
	}
	w.private.closeSession(sid)
	go func() {
		w.shared.dropSession(sid)
		w.creds.each(func(l *link) { l.dropSession(sid) })
	}()
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
		var store *tokenStore
		// Replicas share tokens through KV only sealed (bus/secrets.go):
		// without a key each replica keeps its own.
		if o.JetStream != nil && o.Secrets != nil {
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			store, err = oauthTokenBucket(ctx, w.nc, o.JetStream)
			if err != nil {
				store = nil
				w.log.Warn("oauth2: replicas cannot share tokens (the registry makes the bucket); this one fetches its own", "err", err)
			}
		}
		c := w.up.OAuth2
		src := newOAuth2Source(w.up.Name, oauth2Config{TokenURL: c.TokenURL, ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: c.Scopes},
			store, &http.Client{Transport: w.base, Timeout: 30 * time.Second}, w.log)
		src.secrets = o.Secrets
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
// header on every HTTP request, declaring caps at initialize and reporting
// what comes outside calls to events.
func (w *Worker) newUpstream(header http.Header, caps json.RawMessage, events sessionEvents) upstream {
	switch w.up.Transport {
	case "sse":
		return w.sseUpstream(header, caps, events)
	case "stdio":
		c := newStdioClient(w.up.Name, stdioSpec{Command: w.up.Command, Args: w.up.Args, Env: w.up.Env}, w.version, w.rootLog)
		c.caps, c.events = caps, events
		return c
	default:
		streamable := func() upstream {
			c := newStreamableClient(w.up.Name, w.up.URL.String(), header, w.version, w.hc)
			c.caps, c.events, c.log = caps, events, w.log
			return c
		}
		if !w.up.DetectTransport {
			return streamable()
		}
		return &detectingClient{server: w.up.Name, log: w.log, found: &w.detected, http: streamable,
			sse: func() upstream { return w.sseUpstream(header, caps, events) }}
	}
}

// sseUpstream is a client of the HTTP+SSE transport (the go-sdk's), sending
// header on every request.
func (w *Worker) sseUpstream(header http.Header, caps json.RawMessage, events sessionEvents) upstream {
	hc := &http.Client{Transport: &fixedHeaders{base: w.hc.Transport, header: header}}
	c := newSSEClient(w.up.Name, w.up.URL.String(), hc, w.version, w.rootLog)
	c.caps, c.events = caps, events
	return c
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
	for _, sub := range w.subs {
		_ = sub.Unsubscribe()
	}
	if w.s2cSub != nil {
		_ = w.s2cSub.Unsubscribe()
	}
	w.changes.stop()
	w.shared.close()
	w.creds.closeAll()
	w.private.closeAll()
	w.base.CloseIdleConnections()
	w.usage.close()
	w.beats.Close()
}

// handOffLive runs h on the pool so the subscription goroutine is free at
// once; h answers through the bus.Reply, never through req. A request that
// asks for liveness (takeLive) is acknowledged on the subscription
// goroutine and kept alive while it waits for the pool and runs.
func (w *Worker) handOffLive(h func(micro.Request, bus.Reply)) func(micro.Request) {
	return func(req micro.Request) {
		ok, finished := w.takeLive(req)
		if !ok {
			return
		}
		if !w.pool.Go(func() { defer finished(); h(req, w.beats.Reply(req)) }) {
			finished()
			bus.RespondError(req, bus.Errorf(bus.ErrOverloaded, "worker for server %q is at its limit of concurrent calls", w.up.Name))
		}
	}
}

// callContext bounds one upstream call by the server's timeout and the caller's
// deadline, whichever comes first.
// callLimit is what bounded a call started at start: the server's timeout,
// or the shorter time the caller allowed (an aggregated list's per-server
// bound, a client's deadline).
func (w *Worker) callLimit(env bus.Envelope, start time.Time) time.Duration {
	limit := w.up.Timeout
	if !env.Deadline.IsZero() {
		if allowed := env.Deadline.Sub(start); allowed < limit {
			limit = max(allowed, 0).Round(100 * time.Millisecond)
		}
	}
	return limit
}

func (w *Worker) callContext(env bus.Envelope) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(w.up.Timeout)
	if !env.Deadline.IsZero() && env.Deadline.Before(deadline) {
		deadline = env.Deadline
	}
	return context.WithDeadline(context.Background(), deadline)
}

func (w *Worker) handleInfo(req micro.Request, reply bus.Reply) {
	env, err := bus.ReadEnvelope(nats.Header(req.Headers()))
	if err != nil {
		_ = reply.Error(bus.AsError(err))
		return
	}
	if e := w.admits(env); e != nil {
		_ = reply.Error(e)
		return
	}
	span := w.startSpan(req.Headers(), env, bus.MethodInitialize, nil)
	defer span.End()
	start := time.Now()
	ctx, cancel := w.callContext(env)
	defer cancel()
	// The caller's own credential, if it brings one (a server without
	// auth_value has none of its own).
	l := w.shared
	if w.up.CredentialFromRequest {
		if l = w.linkFor(&env); l == nil {
			_ = reply.Error(bus.Errorf(bus.ErrUpstreamUnavailable, "worker for server %q is shutting down", w.up.Name))
			return
		}
	}
	var info json.RawMessage
	err = w.guard(ctx, func() (err error) {
		info, err = span.info(ctx, l.up)
		return err
	})
	if err != nil {
		err = w.blameCredentials(err, &env)
		span.fail(bus.AsError(err))
		w.fail(reply, env, bus.MethodInitialize, err, start)
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
	if e := w.admits(env); e != nil {
		_ = reply.Error(e)
		return
	}
	if !env.Deadline.IsZero() && time.Now().After(env.Deadline) {
		// It waited out its deadline on the way here (a frozen replica's
		// backlog): nobody waits for it, so it never reaches the upstream or
		// counts toward the breaker.
		w.lateDropped.Add(1)
		_ = reply.Error(bus.Errorf(bus.ErrUpstreamTimeout, "the call to server %q reached its worker after its deadline; it was not sent upstream", w.up.Name))
		return
	}
	if msg.IsNotification() && msg.Method == "notifications/roots/list_changed" {
		w.rootsChanged(env, msg.Params)
		_ = reply.Respond(nil)
		return
	}
	if !msg.IsRequest() {
		_ = reply.Error(bus.Errorf(bus.ErrInvalidRequest, "tool worker takes requests (and notifications/roots/list_changed) only, got %q", msg.Method))
		return
	}
	span := w.startSpan(req.Headers(), env, msg.Method, msg.Params)
	defer span.End()
	callerTools, callerLimited := env.Caller.Permissions.Tools[w.up.Name]
	var tool string
	if msg.Method == bus.MethodToolsCall {
		var ok bool
		if tool, ok = toolName(msg.Params); !ok {
			_ = reply.Error(span.fail(bus.Errorf(bus.ErrInvalidParams, "tools/call: params.name must be one non-empty string under exactly that key")))
			return
		}
	}
	if msg.Method == bus.MethodToolsCall && (w.filter.active() || callerLimited) {
		name := tool
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
	tracked := w.track(&env, msg.ID, cancel)
	defer w.untrack(env.RequestID, tracked)

	l := w.linkFor(&env)
	if l == nil {
		_ = reply.Error(span.fail(bus.Errorf(bus.ErrUpstreamUnavailable, "worker for server %q is shutting down", w.up.Name)))
		return
	}
	params, relay := w.legParams(msg.Params, &env, l)
	defer relay.release()
	start := time.Now()
	resp, cached, err := w.dispatch(ctx, l, &env, msg, params, relay, span)
	rec := callRecord{env: env, method: msg.Method, start: start, bytesIn: len(req.Data()), cache: cached}
	rec.tool = tool
	if err != nil && tracked.cancelledByClient() {
		err = w.clientCancelled(msg.ID)
	}
	if err != nil {
		err = w.blameCredentials(err, &env)
		rec.status, rec.errCode = "failed", bus.AsError(err).Kind.Code
		w.observe(rec)
		span.fail(bus.AsError(err))
		w.fail(reply, env, msg.Method, err, start)
		return
	}
	span.answered(resp.Error)
	var out []byte
	if len(resp.Error) > 0 {
		out = bus.RawErrorResponse(msg.ID, resp.Error)
	} else {
		result := resp.Result
		if msg.Method == bus.MethodToolsList && (w.filter.active() || callerLimited) {
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
			"the answer of upstream server %q is %d bytes, over the bus message limit of %d bytes", w.up.Name, len(out), max)), start)
		return
	}
	w.observe(rec)
	if err := reply.Respond(out); err != nil {
		w.log.Warn("reply to router failed", "request_id", env.RequestID, "err", err)
	}
	w.log.Debug("upstream call", "request_id", env.RequestID, "method", msg.Method, "duration", time.Since(start))
}

// admits applies again the rule the router and the ingress route by: the
// caller must see this server (bus.Visible) and its key must be allowed to use
// it. The ingress sends some requests straight here (bus.Direct), so this is
// the check nearest the credentials, not only a second opinion.
func (w *Worker) admits(env bus.Envelope) *bus.Error {
	spec := bus.ServerSpec{Name: w.up.Name, Public: w.up.Public, AccessGroups: w.up.AccessGroups}
	if !bus.Visible(spec, env.IPClass) {
		return bus.Errorf(bus.ErrUnknownServer, "unknown MCP server %q", w.up.Name)
	}
	if !env.Caller.Permissions.AllowsServer(spec) {
		return bus.Errorf(bus.ErrNotPermitted, "key '%s' may not use MCP server '%s'", env.Caller.Name(), w.up.Name)
	}
	return nil
}

// blameCredentials names the credentials an upstream refused: a call that
// carried its own (x-mcp-<server>-* headers) was refused with those, not
// with the gateway's configured ones.
func (w *Worker) blameCredentials(err error, env *bus.Envelope) error {
	e := bus.AsError(err)
	if e.Kind != bus.ErrUpstreamAuth || w.up.Transport == "stdio" {
		return err
	}
	if w.perRequestHeaders(env.Forward) == nil {
		if w.up.CredentialFromRequest {
			return bus.Errorf(e.Kind, "upstream server %q refused a request that brought no credential: it has no auth_value, so each request must send one (x-mcp-auth, or x-mcp-%s-<header>)",
				w.up.Name, strings.ToLower(w.up.Name))
		}
		return err
	}
	msg := strings.Replace(e.Message, "the gateway's configured credentials",
		"the credentials this request sent (its x-mcp-"+strings.ToLower(w.up.Name)+"-* headers)", 1)
	return bus.Errorf(e.Kind, "%s", msg)
}

// linkFor picks the upstream session for a call: a private one for a client
// that declared capabilities the upstream may use outside calls, else the one
// for its per-request credentials, else the shared one. nil: the worker is
// stopping.
func (w *Worker) linkFor(env *bus.Envelope) *link {
	stdio := w.up.Transport == "stdio" // one process, one session: always shared
	var perRequest http.Header
	if !stdio {
		perRequest = w.perRequestHeaders(env.Forward)
	}
	if !stdio && env.Session != "" && privateCaps(env.ClientCapabilities) {
		credKey := ""
		if perRequest != nil {
			credKey = headerKey(perRequest)
		}
		sid, keyID, caps := env.Session, env.Caller.KeyID, env.ClientCapabilities
		return w.private.get(privateKey(keyID, sid, credKey), func() *link {
			header := w.up.Header
			if perRequest != nil {
				header = w.mergeHeaders(perRequest)
			}
			return w.newLink(header, sid, keyID, caps)
		})
	}
	if perRequest != nil {
		return w.creds.get(perRequest)
	}
	return w.shared
}

// dispatch runs one request on link l: list calls through its catalog cache,
// logging/setLevel and resource subscriptions through its bookkeeping,
// everything else straight upstream. cache is the catalog outcome ("" when
// the method is not cached).
func (w *Worker) dispatch(ctx context.Context, l *link, env *bus.Envelope, msg *bus.Message, params json.RawMessage, relay *callRelay, span *callSpan) (resp *bus.Message, cache string, err error) {
	call := func() (*bus.Message, error) {
		var resp *bus.Message
		err := w.guard(ctx, func() (err error) {
			resp, err = span.call(ctx, l.up, msg.Method, params, relay)
			if err != nil && retryable(msg.Method, err) && ctx.Err() == nil {
				w.log.Info("retrying a list call once after a transport error", "request_id", env.RequestID, "method", msg.Method, "err", bus.AsError(err).Detail())
				resp, err = span.call(ctx, l.up, msg.Method, params, relay)
			}
			return err
		})
		return resp, err
	}
	switch msg.Method {
	case bus.MethodToolsList, bus.MethodPromptsList, bus.MethodResourcesList, bus.MethodResourcesTemplatesList:
		key, ok := catalogKey(msg.Method, msg.Params)
		if !ok {
			break
		}
		resp, cache, err = l.cache.fetch(ctx, key, msg.Method, call, func() bool {
			info, err := l.up.Info(ctx)
			return err == nil && declaresListChanged(info, catalogMethods[msg.Method])
		})
		if err != nil && err == ctx.Err() { // gave up waiting for another call's fetch
			err = bus.ContextError(ctx, w.up.Name)
		}
		w.metrics.cacheOutcome(w.up.Name, msg.Method, cache)
		return resp, cache, err
	case bus.MethodLoggingSetLevel:
		resp, err = l.setLevel(msg.Params, call, func() json.RawMessage {
			info, _ := l.up.Info(ctx)
			return info
		})
		return resp, "", err
	case bus.MethodResourcesSubscribe, bus.MethodResourcesUnsubscribe:
		resp, err = l.subscription(msg.Method, env.Session, msg.Params, call)
		return resp, "", err
	}
	if env.LogLevel != "" {
		l.syncLevel(ctx, env.LogLevel)
	}
	resp, err = call()
	return resp, "", err
}

// rootsChanged forwards a client's notifications/roots/list_changed to the
// upstream session opened for that client, if there is one: only a private
// session declared roots upstream.
func (w *Worker) rootsChanged(env bus.Envelope, params json.RawMessage) {
	if env.Session == "" {
		return
	}
	for _, l := range w.private.find(env.Caller.KeyID, env.Session) {
		ctx, cancel := w.callContext(env)
		if err := l.up.Notify(ctx, "notifications/roots/list_changed", params); err != nil {
			w.log.Info("forwarding notifications/roots/list_changed failed", "request_id", env.RequestID, "err", bus.AsError(err).Detail())
		}
		cancel()
	}
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

func (w *Worker) fail(reply bus.Reply, env bus.Envelope, method string, err error, start time.Time) {
	e := bus.AsError(err)
	if e.Kind == bus.ErrUpstreamTimeout {
		e = bus.Wrap(bus.ErrUpstreamTimeout, e.Cause, "upstream server %q did not answer %s within %s", w.up.Name, method, w.callLimit(env, start))
	}
	w.log.Warn("upstream call failed", "request_id", env.RequestID, "method", method, "code", e.Kind.Code, "err", e.Detail())
	_ = reply.Error(e)
}

// legParams rewrites the caller's progress token into one unique to this
// upstream leg (many callers share one upstream session, so their tokens could
// collide) and returns the relay that maps what comes on the call's stream
// back to the caller. Without a stream subject there is no relay (nil: a
// server-to-client request on the call's stream is refused), except on a
// private session, whose GET stream takes the requests instead.
func (w *Worker) legParams(params json.RawMessage, env *bus.Envelope, l *link) (json.RawMessage, *callRelay) {
	if env.Stream == "" && !l.private() {
		return params, nil
	}
	var original json.RawMessage
	if bytes.Contains(params, []byte(`"progressToken"`)) {
		if rewritten, token, ok := rewriteProgressToken(params, "mcpbus-"+nuid.Next()); ok {
			params, original = rewritten, token
		}
	}
	r := w.newRelay(env, original)
	if l.private() {
		r.fallback = bus.SessionSubject(l.sid)
	}
	return params, r
}
