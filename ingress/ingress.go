// Package ingress is the thin HTTP edge of mcpbus: it terminates MCP Streamable
// HTTP, extracts the caller key and classifies the caller's IP, asks auth who the
// caller is, and publishes the JSON-RPC message with its envelope to the router.
// It holds no upstream secrets.
package ingress

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Options configures the ingress.
type Options struct {
	NC  *nats.Conn
	Log *slog.Logger
	// InternalRanges are the caller addresses treated as internal; everything else
	// is external. The serve command passes general_settings.mcp_internal_ip_ranges
	// (or its defaults).
	InternalRanges []netip.Prefix
	// UseXFF turns on X-Forwarded-For (general_settings.use_x_forwarded_for).
	// It is read only from a direct peer inside TrustedProxies
	// (mcp_trusted_proxy_ranges); the client is then the entry XFFHops places
	// from the right (mcp_xff_num_trusted_hops, default 1 = rightmost).
	UseXFF         bool
	TrustedProxies []netip.Prefix
	XFFHops        int
	// MaxBodyBytes bounds one POSTed message (default 4 MiB).
	MaxBodyBytes int64
	// BodyReadTimeout bounds reading one request body (default
	// DefaultBodyReadTimeout).
	BodyReadTimeout time.Duration
	// Keepalive is how often an idle GET stream gets an SSE comment
	// (default DefaultKeepalive).
	Keepalive time.Duration
	// MaxWait bounds how long one request waits for its answer (default 10m);
	// upstream timeouts are enforced by the router and workers well before it.
	MaxWait time.Duration
	// SessionIdle ends sessions unused for this long (default bus.SessionTTL;
	// with JetStream it is the sessions bucket's TTL, which every replica
	// must agree on).
	SessionIdle time.Duration
	// Servers, if set, tells which client headers some server forwards
	// (extra_headers); x-mcp-{server}-* headers are forwarded regardless.
	Servers *servercache.Cache
	// Metrics is the registry the ingress registers its HTTP metrics in and
	// serves on /metrics, with whatever else is registered there (the gateway
	// adds the workers', NATS and Go runtime metrics). Nil: a registry of its
	// own, with the ingress's metrics only.
	Metrics *prometheus.Registry
	// TracerProvider makes the HTTP spans (tracing.go); nil: the global one.
	TracerProvider trace.TracerProvider
	// Stateless serves MCP 2026-07-28, the stateless revision, to the
	// clients that ask for it (modern.go). Off, such a request is refused
	// as an unsupported MCP-Protocol-Version, which makes a dual-era client
	// open a 2025-11-25 session instead.
	Stateless bool
	// EnableMCPRegistry serves GET /v1/mcp/registry.json
	// (general_settings.enable_mcp_registry); without it that path is 404.
	EnableMCPRegistry bool
	// Version is the gateway version registry.json shows (default version.Version of bus/version).
	Version string
	// JetStream, if set, holds downstream sessions in the KV bucket
	// bus.BucketSessions, so another ingress replica serves them; nil keeps
	// them in this process only.
	JetStream jetstream.JetStream
	// State sets the replicas of the sessions bucket (bus.StatePolicy).
	State bus.StatePolicy
	// AllowedOrigins are Origin/Host values accepted besides localhost ones
	// (general_settings.mcp_allowed_origins); others get 403.
	AllowedOrigins []string
	// RouterOnly sends every message through the router, even a request the
	// router would only forward to one server's workers (target.go); for
	// comparing the two paths (BenchmarkToolsCallInProcessViaRouter) and for
	// debugging.
	RouterOnly bool
	// ListenAddr is the address the HTTP server is bound to; localhost
	// origins are accepted when it is a loopback address.
	ListenAddr string
	// Routes are the route families this ingress serves (`--routes`); nil
	// serves every family. The others answer 404 (routes.go).
	Routes []bus.RouteFamily
	// ExternalRoutes are the families external callers may reach
	// (general_settings.external_routes); nil is bus.DefaultExternalRoutes,
	// MCP only. The others answer them 403 before authentication.
	ExternalRoutes []bus.RouteFamily
	// OAuth, if set, accepts OAuth access tokens beside keys (oauth.go).
	OAuth *OAuthOptions
}

// Ingress serves MCP over HTTP.
type Ingress struct {
	o        Options
	nc       *nats.Conn
	log      *slog.Logger
	sessions *sessionStore
	// calls and revocations end a revoked key's in-flight calls (inflight.go).
	calls       inflight
	revocations *nats.Subscription
	// verified caches auth's reusable answers (verifycache.go); nil: ask every time.
	verified    *verifyCache
	verifiedSub *nats.Subscription
	oauth       *oauthGate // nil: keys only
	exchanged   exchanges  // token exchanges (oauth_exchange.go)
	mux         *http.ServeMux
	handler     http.Handler // mux, instrumented
	metrics     *httpMetrics
	xff         xffPolicy
	origin      originPolicy
	routes      routePolicy // routes.go
	// uiSessions and uiFeed serve the admin UI (ui_session.go,
	// ui_routes.go); nil when the ingress does not serve it.
	uiSessions *uiSessions
	uiFeed     *uiFeed
	// hub carries POST streams and answers (streams.go); events are the open
	// session streams (events.go), fed by notifySub too (notify.go).
	hub *streamHub
	// workers sends direct requests to tool workers with liveness
	// (bus/liveness.go); nil sends them as plain requests.
	workers *bus.WorkerRequester
	// clockSkew is set once a worker dropped a direct send as too late on
	// arrival: its clock and this one disagree, so liveness is off.
	clockSkew atomic.Bool
	events    eventStreams
	listens   listenStreams // subscriptions/listen (listen.go)
	notifySub *nats.Subscription
	keepalive time.Duration
	closeOnce sync.Once
	// httpServers are the HTTP servers told to end the streams at shutdown.
	httpServers sync.Map
}

// New builds the ingress. Close stops its background work and ends its streams.
func New(o Options) *Ingress {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Keepalive <= 0 {
		o.Keepalive = DefaultKeepalive
	}
	if o.BodyReadTimeout <= 0 {
		o.BodyReadTimeout = DefaultBodyReadTimeout
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	// A message must fit one bus message, with room for the envelope headers.
	if limit := o.NC.MaxPayload() - 16<<10; o.MaxBodyBytes > limit {
		o.MaxBodyBytes = limit
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 10 * time.Minute
	}
	if o.SessionIdle <= 0 {
		o.SessionIdle = bus.SessionTTL
	}
	if o.XFFHops <= 0 {
		o.XFFHops = 1
	}
	g := &Ingress{o: o, nc: o.NC, log: o.Log, keepalive: o.Keepalive,
		xff:    xffPolicy{enabled: o.UseXFF, trusted: o.TrustedProxies, hops: o.XFFHops},
		origin: newOriginPolicy(o.ListenAddr, o.AllowedOrigins), routes: newRoutePolicy(o.Routes, o.ExternalRoutes),
		oauth: newOAuthGate(o.OAuth), exchanged: exchanges{until: map[string]time.Time{}, flights: map[string]chan struct{}{}}}
	g.sessions = g.openSessions()
	hub, err := newStreamHub(o.NC, o.Log)
	if err != nil {
		g.log.Error("cannot subscribe to this ingress's stream subjects; MCP requests will fail", "err", err)
	}
	g.hub = hub
	if g.workers, err = bus.NewWorkerRequester(o.NC, o.Log); err != nil {
		g.log.Error("cannot subscribe to worker replies; direct calls go without liveness", "err", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/mcp", g.serveMCP)
	mux.HandleFunc("/mcp/", g.serveMCP)
	mux.HandleFunc("/sse", g.serveLegacyStream)
	mux.HandleFunc("/sse/", g.serveLegacyStream)
	mux.HandleFunc("/messages", g.serveLegacyMessage)
	mux.HandleFunc("GET /health/liveliness", g.liveliness)
	mux.HandleFunc("GET /health/readiness", g.readiness)
	mux.HandleFunc("GET "+WellKnownProtectedResource, g.protectedResource) // oauth.go
	mux.HandleFunc("GET "+WellKnownProtectedResource+"/", g.protectedResource)
	mux.HandleFunc("GET "+WellKnownAuthorizationServer, g.authorizationServer) // oauth_register.go
	mux.HandleFunc("GET "+WellKnownAuthorizationServer+"/", g.authorizationServer)
	mux.HandleFunc("POST "+RegisterPath, g.register)
	mux.HandleFunc("OPTIONS "+RegisterPath, registerPreflight)
	g.jwksRoutes(mux) // jwks.go
	g.adminRoutes(mux)
	g.metricsRoutes(mux)
	g.restRoutes(mux)
	g.llmRoutes(mux) // llm.go
	g.a2aRoutes(mux) // a2a.go
	if g.routes.serves(bus.RoutesUI) {
		g.uiSessions = g.openUISessions()
		g.uiRoutes(mux) // ui_routes.go
	}
	g.handler = g.instrument(g.exposeRoutes(routesOrJSON(mux))) // routes.go, notfound.go
	g.mux = mux
	g.verified = newVerifyCache()
	g.startVerifyCache()
	g.startRevocationWatch()
	if g.routes.serves(bus.RoutesMCP) {
		g.startNotify() // servers' notifications, for MCP sessions only
	}
	if g.routes.serves(bus.RoutesUI) {
		g.startUIFeed()
	}
	return g
}

// openSessions opens the session store: the JetStream bucket when
// Options.JetStream is set (sessionkv.go), else this process's memory.
func (g *Ingress) openSessions() *sessionStore {
	// An ingress that serves no MCP route has no sessions to share (and its
	// bus user may not use the bucket: BusUser.Routes).
	if g.o.JetStream != nil && g.routes.serves(bus.RoutesMCP) {
		ctx, cancel := context.WithTimeout(context.Background(), bus.FormingWait)
		defer cancel()
		s, err := openSessionStore(ctx, g.o.JetStream, g.state(), g.o.SessionIdle, g.log, g.sessionEnded, nil)
		if err == nil {
			return s
		}
		g.log.Error("sessions bucket unavailable: keeping sessions in this process only, so other ingress replicas will not know them", "err", err)
	}
	s := newSessionStore(g.o.SessionIdle, g.sessionEnded, nil)
	s.log = g.log
	return s
}

// sessionEnded is told of every session that ends: its stream here ends,
// and when this process saw the end first (DELETE, a legacy stream closed,
// an expiry), workers hear of it so they close upstream sessions opened
// for it.
func (g *Ingress) sessionEnded(id string, publish bool) {
	g.events.end(id, errSessionEnded)
	if publish {
		if err := g.nc.Publish(bus.SubjectSessionClosed, []byte(id)); err != nil {
			g.log.Warn("could not announce a session's end", "err", err)
		}
	}
}

// Handler is the HTTP handler to serve.
func (g *Ingress) Handler() http.Handler { return g.handler }

// Close stops background work and ends every open stream (so an HTTP
// server's Shutdown is not held up by them). It may be called more than once.
func (g *Ingress) Close() {
	g.closeOnce.Do(func() {
		g.events.closeAll()
		g.listens.closeAll()
		if g.notifySub != nil {
			_ = g.notifySub.Unsubscribe()
		}
		if g.verifiedSub != nil {
			_ = g.verifiedSub.Unsubscribe()
		}
		g.hub.close()
		g.sessions.close()
		g.workers.Close()
		g.uiFeed.close()
	})
}

func (g *Ingress) liveliness(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, []byte(`"I'm alive!"`))
}

// readiness is 200 when the ingress can serve: its NATS connection is up and
// the registry cache (Options.Servers, which servercache.Follow returns only
// once the initial KV load is in) follows the servers bucket (its own
// connection is up: while it is down, edits made elsewhere do not arrive).
// Otherwise 503, naming the checks that failed.
func (g *Ingress) readiness(w http.ResponseWriter, _ *http.Request) {
	type report struct {
		Status   string   `json:"status"`
		NATS     string   `json:"nats"`
		Registry string   `json:"registry"`
		Failed   []string `json:"failed,omitempty"`
		// Drained counts the servers an operator drained: they refuse calls
		// by design, which leaves this replica ready. A count, not names:
		// the probe needs no key.
		Drained int `json:"drained_servers,omitempty"`
	}
	rep := report{Status: "healthy", NATS: "connected", Registry: "loaded"}
	if st := g.nc.Status(); st != nats.CONNECTED {
		rep.NATS = strings.ToLower(st.String())
		rep.Failed = append(rep.Failed, "nats")
	}
	switch {
	case g.o.Servers == nil:
		rep.Registry = "not loaded"
		rep.Failed = append(rep.Failed, "registry")
	case !g.o.Servers.Live():
		rep.Registry = "not following (its bus connection is down)"
		rep.Failed = append(rep.Failed, "registry")
	}
	if g.o.Servers != nil {
		for _, s := range g.o.Servers.List() {
			if s.Drain {
				rep.Drained++
			}
		}
	}
	code := http.StatusOK
	if len(rep.Failed) > 0 {
		rep.Status, code = "unhealthy", http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(rep)
	writeJSON(w, code, body)
}

// state is the bucket policy, logging to the ingress's logger.
func (g *Ingress) state() bus.StatePolicy {
	p := g.o.State
	if p.Log == nil {
		p.Log = g.log
	}
	return p
}
