// Package toolworkers holds the tool workers: one NATS micro service per upstream
// MCP server, in a queue group per server so replicas share the load. A worker is
// the only place a server's credentials exist; it keeps one upstream session open
// per replica and relays JSON-RPC results byte for byte.
//
// The package is the bus-facing worker (worker.go, handle.go, links, relay,
// catalog, filter, resilience, usage, metrics); the upstream transports are
// in toolworkers/upstream and the credential plumbing in
// toolworkers/credential.
package toolworkers

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/pool"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/mcpbus/mcpbus/internal/signing"
	"github.com/mcpbus/mcpbus/toolworkers/credential"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
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
	Servers *servercache.Cache
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
	// Signer, if set, signs every upstream HTTP request (signed calls:
	// credential/signed.go); one Signer serves every worker of a process.
	Signer *signing.Signer
	// PublicURL is the gateway's public base URL, which a per-user OAuth
	// server's sign-in links and callback are built on (useroauth.go);
	// empty: PROXY_BASE_URL from Env.
	PublicURL string
	// Audit is general_settings.mcp_audit: with Enabled, every tools/call
	// is recorded in the audit stream (audit.go).
	Audit config.Audit
	// ToolPinning is general_settings.mcp_tool_pinning: the tool_pinning
	// of a server whose record sets none (pins.go); "" is off.
	ToolPinning string
	// Guards are the config's guards (guards.go): those with default_on,
	// and those the server's guardrails name, run on its tools/calls.
	Guards []config.Guard
}

// Worker serves one upstream server on the bus.
type Worker struct {
	// detected is the transport found for a server configured without one
	// (detect.go).
	detected upstream.Detected
	// era is the protocol era found (or pinned by spec_version) for a
	// Streamable HTTP server, shared by its clients.
	era     *upstream.Era
	up      *config.Upstream
	nc      *nats.Conn
	svc     micro.Service
	pool    *pool.Pool
	log     *slog.Logger // carries server=<name>
	rootLog *slog.Logger // for clients that add server themselves
	filter  toolFilter
	servers *servercache.Cache
	extra   map[string]bool // extra_headers, canonical
	static  map[string]bool // static_headers names, canonical

	cred    *credential.Client // the replica's HTTP client, with the server's credentials
	version string
	shared  *link        // the shared session, for callers without own credentials or private capabilities
	creds   *credClients // sessions for callers with per-request credentials
	// userCreds: on a server with is_byok, its users' own credentials
	// (usercreds.go); nil otherwise.
	userCreds *userCreds
	// userOAuth: on a server whose users sign in (oauth2_flow
	// authorization_code), the flow and the tokens (useroauth.go).
	userOAuth *userOAuth
	private   privateLinks // sessions for one downstream session each (private.go)
	changes   changeNotices
	limit     *limiter
	breaker   *breaker
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
	// parks are the calls waiting for their callers' input (park.go), by
	// number (decimal); parkMu guards the counts.
	parks      sync.Map
	parkMu     sync.Mutex
	parkCount  int
	parksByKey map[string]int
	s2cSub     *nats.Subscription
	tracer     trace.Tracer    // tracing.go
	usage      usagePublisher  // usage.go
	audit      *auditPublisher // audit.go; nil: audit off
	metrics    *Metrics
	// Liveness (liveness.go): heartbeats of running calls, and requests
	// dropped for arriving after their accept-by time.
	beats       *bus.Responder
	lateDropped atomic.Uint64 // past their deadline (handleRPC)
	// variant is "stable", or "canary" for the canary a stable worker holds
	// (canary.go), which is not on the bus itself: the stable worker hands
	// it the calls of the sessions it picks.
	variant string
	canary  atomic.Pointer[Worker]
	// leases are the subscriptions/listen leases holding resource
	// subscriptions on this replica's links (leases.go).
	leases listenLeases
	// lists are the lists shared with the server's other replicas
	// (shared_lists.go).
	lists sharedLists
	// catalogs are the lists kept across restarts (warm_catalogs.go).
	catalogs warmCatalogs
	// pins: the server's pinned tool definitions (pins.go); nil when
	// tool_pinning is off. A canary shares its stable worker's.
	pins *toolPins
	// guards: the guards on the server's tools/calls (guards.go); nil when
	// none applies.
	guards *guardChain
	// tasks: the server's durable tool calls (tasks.go); nil when off.
	tasks *workerTasks
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
	if up.UserOAuth != nil && !up.UserOAuth.Exchange { // an exchange has no sign-in page
		if o.PublicURL = cmpOr(strings.TrimRight(o.PublicURL, "/"), config.PublicURL(o.Env, config.OAuth{})); o.PublicURL == "" {
			return nil, fmt.Errorf("worker for server %q: mcp_servers.%s.oauth2_flow: authorization_code sends each user to sign in and back to <gateway>/oauth/callback: set %s (or general_settings.mcp_oauth.resource) to the gateway's public URL",
				spec.Name, spec.Name, config.PublicURLEnv)
		}
	}
	if err := checkGuardNames(o.Guards, up.Guardrails); err != nil { // guards.go
		return nil, fmt.Errorf("worker for server %q: mcp_servers.%s.%w", spec.Name, spec.Name, err)
	}
	w := newWorker(nc, up, spec, o)
	w.startCanary(spec, o) // canary.go
	if err := w.serve(); err != nil {
		if c := w.canary.Swap(nil); c != nil {
			c.Stop()
		}
		return nil, err
	}
	return w, nil
}

// newWorker makes the worker of up (the record's spec, opened): its links,
// limiter, breaker and credentials, not yet on the bus.
func newWorker(nc *nats.Conn, up *config.Upstream, spec bus.ServerSpec, o Options) *Worker {
	w := &Worker{
		up:      up,
		nc:      nc,
		beats:   bus.NewResponder(nc),
		pool:    pool.New(o.MaxInFlight),
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
		audit:   newAuditPublisher(o.Audit, nc, o.Log.With("server", up.Name)),
		variant: variantStable,
		// nuid: [0-9A-Za-z], one subject token, unique per replica.
		s2cToken:   nuid.Next(),
		parksByKey: map[string]int{},
	}
	w.changes = changeNotices{w: w, window: 250 * time.Millisecond}
	w.lists = sharedLists{server: up.Name, lazyKV: lazyKV{js: o.JetStream, name: bus.BucketLists}}
	w.catalogs = newWarmCatalogs(w, o)
	w.loadCatalogs() // warm_catalogs.go
	w.pins = newToolPins(w, bus.EffectivePinning(spec.ToolPinning, o.ToolPinning), o.JetStream)
	w.guards = newGuardChain(o.Guards, up.Guardrails)  // guards.go
	w.tasks = newWorkerTasks(w, up.Tasks, o.JetStream) // tasks.go
	w.era = &upstream.Era{}
	if up.SpecVersion != "" {
		w.era = upstream.PinnedEra(up.SpecVersion) // the operator pinned a revision
		if up.SpecVersion < bus.FirstModernVersion {
			w.version = up.SpecVersion // asked for at initialize
		}
	}
	for _, h := range up.ExtraHeaders {
		w.extra[h] = true
	}
	for k := range spec.StaticHeaders {
		w.static[http.CanonicalHeaderKey(k)] = true
	}
	w.cred = credential.New(up, credential.Options{NC: nc, JetStream: o.JetStream, Secrets: o.Secrets, Log: w.log, Signer: o.Signer})
	if up.BYOK || up.UserOAuth != nil {
		w.userCreds = newUserCreds(nc, up.Name, o.Secrets)
	}
	if up.UserOAuth != nil {
		w.userOAuth = newUserOAuth(up.Name, up.UserOAuth, o.PublicURL, o, w.userCreds, w.log)
	}
	w.shared = w.newLink(up.Header, "", "", nil)
	w.creds = newCredClients(func(perRequest http.Header) *link { return w.newLink(w.mergeHeaders(perRequest), "", "", nil) })
	return w
}

// serve registers the worker's micro service and its endpoints, after the
// subscriptions: a call must never run before the answers to its
// server-to-client requests or its cancellation can arrive. On failure
// everything started is stopped.
func (w *Worker) serve() error {
	up := w.up
	svc, err := micro.AddService(w.nc, micro.Config{
		Name:        bus.ServiceWorker,
		Version:     version.Version,
		Description: "tool worker for upstream MCP server " + up.Name,
		Metadata:    map[string]string{"server": up.Name, "transport": up.Transport},
		QueueGroup:  bus.ToolQueue(up.Name),
		// The calls this replica runs now, in its rpc endpoint's stats
		// ($SRV.STATS: the admin UI's cluster page).
		StatsHandler: func(e *micro.Endpoint) any {
			if e.Name != "rpc" {
				return nil
			}
			return bus.WorkerStats{InFlight: w.pool.InFlight()}
		},
	})
	if err != nil {
		w.shared.close()
		return err
	}
	w.svc = svc
	w.metrics.add(w)
	if err := w.subscribe(); err != nil {
		w.Stop()
		return err
	}
	if err := w.pins.follow(); err != nil { // pins.go
		w.Stop()
		return err
	}
	if err := w.tasks.listen(); err != nil { // tasks.go
		w.Stop()
		return err
	}
	if err := svc.AddEndpoint("rpc", micro.HandlerFunc(w.handOffLive(w.handleRPC)), micro.WithEndpointSubject(bus.ToolRPC(up.Name))); err != nil {
		w.Stop()
		return err
	}
	if err := svc.AddEndpoint("info", micro.HandlerFunc(w.handOffLive(w.handleInfo)), micro.WithEndpointSubject(bus.ToolInfo(up.Name))); err != nil {
		w.Stop()
		return err
	}
	if w.userOAuth != nil {
		if err := w.serveFlow(); err != nil { // useroauth.go
			w.Stop()
			return err
		}
	}
	return nil
}

// subscribe listens for cancellations, ended sessions and the answers to
// this replica's server-to-client requests.
func (w *Worker) subscribe() error {
	if err := w.startServerRequests(); err != nil {
		return err
	}
	if w.userCreds != nil {
		sub, err := w.userCreds.subscribe() // usercreds.go
		if err != nil {
			return err
		}
		w.subs = append(w.subs, sub)
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
	go w.dropSubscriber(sid) // leases.go
}

// newUpstream makes a client for this server speaking its transport, sending
// header on every HTTP request, declaring caps at initialize and reporting
// what comes outside calls to events.
func (w *Worker) newUpstream(header http.Header, caps json.RawMessage, events upstream.Events) upstream.Client {
	// The SSE and stdio clients name the server in their log lines themselves.
	o := upstream.Options{Server: w.up.Name, Version: w.version, Caps: caps, Events: events, Era: w.era, Log: w.rootLog}
	sse := func() upstream.Client {
		return upstream.NewSSE(o, w.up.URL.String(), w.cred.WithHeaders(header, upstream.InjectTrace))
	}
	switch w.up.Transport {
	case "sse":
		return sse()
	case "stdio":
		return upstream.NewStdio(o, upstream.Process{Command: w.up.Command, Args: w.up.Args, Env: w.up.Env})
	}
	streamable := func() upstream.Client {
		so := o
		so.Log = w.log
		return upstream.NewStreamable(so, w.up.URL.String(), header, w.cred.HTTP)
	}
	if !w.up.DetectTransport {
		return streamable()
	}
	so := o
	so.Log = w.log
	return upstream.NewDetecting(so, &w.detected, streamable, sse)
}

// Stop deregisters the worker, ends its upstream sessions (and stdio process)
// and closes its connections.
func (w *Worker) Stop() {
	if c := w.canary.Swap(nil); c != nil {
		c.Stop()
	}
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
	if w.variant == variantStable {
		w.pins.end()
	}
	w.tasks.end()
	w.changes.stop()
	w.leases.stop()
	w.parks.Range(func(_, p any) bool { p.(*park).end(); return true }) // their upstream calls stop
	w.catalogs.end()
	w.shared.close()
	w.creds.closeAll()
	w.private.closeAll()
	w.cred.Close()
	w.usage.close()
	w.audit.close()
	w.beats.Close()
}
