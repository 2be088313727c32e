package toolworkers

// Handling one request from the bus: hand-off to the pool with liveness,
// admission (the caller's permissions, the deadline), the tool filters, the
// call through the breaker and limiter, and the answer.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/signing"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/nats-io/nuid"
)

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
	w.variantFor(env, nil).serveInfo(req, reply, env)
}

// serveInfo answers the upstream's initialize result, on w's upstream (the
// stable one, or the canary variantFor picked).
func (w *Worker) serveInfo(req micro.Request, reply bus.Reply, env bus.Envelope) {
	span := w.startSpan(req.Headers(), env, bus.MethodInitialize, nil)
	defer span.End()
	start := time.Now()
	ctx, cancel := w.callContext(env)
	defer cancel()
	// The caller's own credential, if it brings one (a server without
	// auth_value has none of its own).
	l := w.shared
	var perRequest http.Header
	if w.up.CredentialFromRequest || w.userOAuth != nil {
		var e *bus.Error
		perRequest, e = w.callHeaders(ctx, &env) // usercreds.go
		if e != nil {
			_ = reply.Error(span.fail(e))
			return
		}
		if l = w.linkFor(&env, perRequest); l == nil {
			_ = reply.Error(bus.Errorf(bus.ErrUpstreamUnavailable, "worker for server %q is shutting down", w.up.Name))
			return
		}
	}
	var info json.RawMessage
	ctx = upstream.WithCaller(ctx, callerFor(&env, false)) // a server of both eras describes itself per era
	err := w.guard(ctx, func() (err error) {
		info, err = span.info(ctx, l.up)
		return err
	})
	if err != nil {
		err = w.blameCredentials(w.oauthRefused(ctx, &env, perRequest, err), &env) // useroauth_refresh.go
		span.fail(bus.AsError(err))
		w.fail(reply, env, bus.MethodInitialize, err, start)
		return
	}
	_ = reply.Respond(info)
}

func (w *Worker) handleRPC(req micro.Request, reply bus.Reply) {
	defer w.metrics.callRunning(w.up.Name)() // metrics.go: mcpbus_worker_in_flight_calls
	env, msg, ok := w.takeRequest(req, reply)
	if !ok {
		return
	}
	w.variantFor(env, msg).serveRPC(req, reply, env, msg)
}

// serveRPC runs one admitted request on w's upstream (the stable one, or the
// canary variantFor picked).
func (w *Worker) serveRPC(req micro.Request, reply bus.Reply, env bus.Envelope, msg *bus.Message) {
	span := w.startSpan(req.Headers(), env, msg.Method, msg.Params)
	defer span.End()
	var received time.Time
	if w.audit != nil {
		received = time.Now()
	}
	tool, e := w.toolAllowed(env, msg)
	if e == nil && tool != "" {
		e = w.pins.refuses(tool) // pins.go: a changed tool waits for approval
	}
	if e != nil {
		w.auditRefused(env, msg, tool, received, e)
		_ = reply.Error(span.fail(e))
		return
	}
	if w.tasks != nil && tool != "" && w.tasks.accept(req, reply, env, msg, tool, span) { // tasks.go: runs as a task
		return
	}
	ctx, cancel := w.callContext(env)
	defer cancel()
	w.call(ctx, cancel, req, reply, env, msg, tool, received, span)
}

// call runs one admitted request under ctx (cancel ends it) and answers on
// reply: a client's request, or a task's run (tasks.go).
func (w *Worker) call(ctx context.Context, cancel context.CancelFunc, req micro.Request, reply bus.Reply, env bus.Envelope, msg *bus.Message, tool string, received time.Time, span *callSpan) {
	tracked := w.track(&env, msg.ID, cancel)
	defer w.untrack(env.RequestID, tracked)
	asSent := msg // what the caller sent, for the audit record
	sent := msg.Params
	var guarded *guardRun
	if w.guards != nil && tool != "" { // guards.go
		guarded = &guardRun{}
		var e *bus.Error
		if msg, e = w.guardRequest(ctx, guarded, &env, msg, tool); e != nil {
			w.auditGuarded(env, msg, tool, received, e, guarded)
			_ = reply.Error(span.fail(e))
			return
		}
	}

	perRequest, e := w.callHeaders(ctx, &env) // usercreds.go: a user's own credential
	if e != nil {
		w.auditGuarded(env, asSent, tool, received, e, guarded)
		_ = reply.Error(span.fail(e))
		return
	}
	l := w.linkFor(&env, perRequest)
	if l == nil {
		_ = reply.Error(span.fail(bus.Errorf(bus.ErrUpstreamUnavailable, "worker for server %q is shutting down", w.up.Name)))
		return
	}
	params := msg.Params
	if env.Modern() {
		// The upstream holds a session of an older revision: the
		// stateless-era keys are the ingress's to read, not its.
		stripped, err := bus.StripModernMeta(params)
		if err != nil {
			_ = reply.Error(span.fail(bus.Wrap(bus.ErrInvalidParams, err, "%s: params are not a JSON object", msg.Method)))
			return
		}
		params = stripped
	}
	params, relay := w.legParams(params, &env, l)
	defer relay.Release()
	ctx = upstream.WithCaller(ctx, callerFor(&env, relay != nil))
	// Whom a signed call's token names (credential/signed.go).
	ctx = signing.WithCall(ctx, signing.Call{Caller: env.Caller, RequestID: env.RequestID, Method: msg.Method, Tool: tool})
	if env.Modern() && msg.Method == bus.MethodToolsCall {
		if e := w.checkParamHeaders(ctx, l, &env, tool, sent); e != nil { // params.go: the headers against what the caller sent (a guard may have changed it)
			w.auditGuarded(env, asSent, tool, received, e, guarded)
			_ = reply.Error(span.fail(e))
			return
		}
	}
	start := time.Now()
	var resp *bus.Message
	var cached string
	var err error
	if env.Modern() && bridgesInput(msg.Method) && !w.era.Modern() && privateCaps(env.ClientCapabilities) {
		// A session-era upstream may ask this caller for input mid-call,
		// which it can only be asked by input_required (park.go). A caller
		// that declared nothing it could be asked is refused for it on the
		// plain path, which costs no park.
		resp, err = w.parkCall(ctx, l, &env, msg, params, relay)
	} else {
		resp, cached, err = w.dispatch(ctx, l, &env, msg, params, relay, span)
	}
	if err == nil && !env.Modern() && bridgesInput(msg.Method) {
		// A 2026-07-28 upstream may ask for input by its answer; a caller
		// of the session era is asked on its stream instead (mrtr.go).
		resp, err = fulfil(ctx, w.up.Name, resp, params, relay, func(p json.RawMessage) (r *bus.Message, err error) {
			err = w.guard(ctx, func() (err error) {
				r, err = span.call(ctx, l.up, msg.Method, p, relay)
				return err
			})
			return r, err
		})
	}
	if err == nil && guarded != nil && len(resp.Error) == 0 && len(w.guards.result) > 0 {
		resp, err = w.guardResult(ctx, guarded, &env, resp, tool) // guards.go
	}
	rec := callRecord{env: env, method: msg.Method, tool: tool, start: start, bytesIn: len(req.Data()), cache: cached,
		received: received, params: sent, guards: guarded.list()}
	if err != nil && tracked.cancelledByClient() {
		err, rec.cancelled = w.clientCancelled(msg.ID), true
	}
	if err != nil {
		err = w.blameCredentials(w.oauthRefused(ctx, &env, perRequest, err), &env) // useroauth_refresh.go
		rec.status, rec.errCode = "failed", bus.AsError(err).Kind.Code
		w.observe(rec)
		span.fail(bus.AsError(err))
		w.fail(reply, env, msg.Method, err, start)
		return
	}
	span.answered(resp.Error)
	w.respond(reply, msg, resp, rec, span)
}

// takeRequest decodes a request and refuses what must not reach the
// upstream: a caller that may not use the server, a call past its deadline,
// anything but a request (roots/list_changed, handled here, excepted).
func (w *Worker) takeRequest(req micro.Request, reply bus.Reply) (bus.Envelope, *bus.Message, bool) {
	env, msg, derr := bus.DecodeRequest(req)
	if derr != nil {
		_ = reply.Error(derr)
		return env, nil, false
	}
	if e := w.admits(env); e != nil {
		_ = reply.Error(e)
		return env, nil, false
	}
	if !env.Deadline.IsZero() && time.Now().After(env.Deadline) {
		// It waited out its deadline on the way here (a frozen replica's
		// backlog): nobody waits for it, so it never reaches the upstream or
		// counts toward the breaker.
		w.lateDropped.Add(1)
		_ = reply.Error(bus.Errorf(bus.ErrUpstreamTimeout, "the call to server %q reached its worker after its deadline; it was not sent upstream", w.up.Name))
		return env, nil, false
	}
	if msg.IsNotification() && msg.Method == "notifications/roots/list_changed" {
		w.variantFor(env, nil).rootsChanged(env, msg.Params) // the session's variant holds its sessions
		_ = reply.Respond(nil)
		return env, nil, false
	}
	if !msg.IsRequest() {
		_ = reply.Error(bus.Errorf(bus.ErrInvalidRequest, "tool worker takes requests (and notifications/roots/list_changed) only, got %q", msg.Method))
		return env, nil, false
	}
	return env, msg, true
}

// toolAllowed returns the tool a tools/call names ("" for other methods) and
// refuses it (the tool still returned, for the audit record) if the server's tool filter or the caller's permissions exclude it.
func (w *Worker) toolAllowed(env bus.Envelope, msg *bus.Message) (string, *bus.Error) {
	if msg.Method != bus.MethodToolsCall {
		return "", nil
	}
	tool, ok := toolName(msg.Params)
	if !ok {
		return "", bus.Errorf(bus.ErrInvalidParams, "tools/call: params.name must be one non-empty string under exactly that key")
	}
	if !w.filter.allows(tool) {
		return tool, bus.Errorf(bus.ErrToolNotAllowed, "tool %q is not allowed on server %q by the gateway's allowed_tools/disallowed_tools", tool, w.up.Name)
	}
	if callerTools, limited := env.Caller.Permissions.Tools[w.up.Name]; limited && !slices.Contains(callerTools, tool) {
		return tool, bus.Errorf(bus.ErrNotPermitted, "%s may not call tool '%s' on server '%s'", env.Caller.Who(), tool, w.up.Name)
	}
	return tool, nil
}

// respond relays the upstream's answer (a tools/list filtered as tools/call
// is), records the call and replies; an answer too large for the bus fails.
func (w *Worker) respond(reply bus.Reply, msg *bus.Message, resp *bus.Message, rec callRecord, span *callSpan) {
	env := rec.env
	var out []byte
	if len(resp.Error) > 0 {
		out = bus.RawErrorResponse(msg.ID, resp.Error)
	} else {
		result := resp.Result
		if msg.Method == bus.MethodToolsList && w.pins != nil {
			result = w.pins.list(result) // pins.go
		}
		if msg.Method == bus.MethodToolsList && w.tasks != nil && !env.Modern() {
			result = w.tasks.mark(result) // tasks.go
		}
		callerTools, limited := env.Caller.Permissions.Tools[w.up.Name]
		if msg.Method == bus.MethodToolsList && (w.filter.active() || limited) {
			result = filterTools(result, func(name string) bool {
				return w.filter.allows(name) && (!limited || slices.Contains(callerTools, name))
			})
			// What this caller sees is its own, whatever the upstream said.
			result = bus.PrivateScope(result)
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
			"the answer of upstream server %q is %d bytes, over the bus message limit of %d bytes", w.up.Name, len(out), max)), rec.start)
		return
	}
	w.observe(rec)
	if err := reply.Respond(out); err != nil {
		w.log.Warn("reply to router failed", "request_id", env.RequestID, "err", err)
	}
	w.log.Debug("upstream call", "request_id", env.RequestID, "method", msg.Method, "duration", time.Since(rec.start))
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
		return bus.Errorf(bus.ErrNotPermitted, "%s may not use MCP server '%s'", env.Caller.Who(), w.up.Name)
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
	if w.userCreds != nil && w.perRequestHeaders(env.Forward).Get(w.authHeaderName()) == "" {
		return bus.Errorf(e.Kind, "%s", strings.Replace(e.Message, "the gateway's configured credentials",
			"your stored credential (replace it with POST /v1/mcp/server/"+w.up.Name+"/user-credential)", 1))
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
		if key, ok := catalogKey(msg.Method, msg.Params); ok {
			return w.listThroughCatalog(ctx, l, msg.Method, key, call) // catalog.go
		}
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
