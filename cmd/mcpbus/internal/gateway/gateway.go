// Package gateway assembles every mcpbus service in one process: the embedded
// (or an external) NATS server, auth, registry, router, one tool worker per
// configured server, and the HTTP ingress.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/a2a/agentworkers"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/adminhttp"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// Options configures Start.
type Options struct {
	Config *config.File
	// Listen is the HTTP address (host:port; port 0 picks one).
	Listen string
	// DataDir holds the embedded server's JetStream store.
	DataDir string
	// NATSURL, if set, uses an external NATS server instead of the embedded one.
	NATSURL string
	// NATSConnect says how this process joins NATSURL: its credentials and
	// TLS files (flags); the environment fills what it leaves unset.
	NATSConnect natsnode.ConnectOptions
	// NATSListen is the embedded server's loopback listener ("off" for none).
	NATSListen string
	// NATSNode is how the embedded server joins others: its name, cluster,
	// JetStream domain, leaf listener for connectors and certificate
	// (natsnode.EmbeddedOptions; the gateway sets DataDir, Listen, Users).
	NATSNode natsnode.EmbeddedOptions
	Log      *slog.Logger
	// Env resolves os.environ/ references in server records (default os.LookupEnv).
	Env config.LookupEnv
	// WorkerMaxInFlight bounds each worker's concurrent upstream calls.
	WorkerMaxInFlight int
	// TracerProvider makes the ingress, router and worker spans; nil: the
	// global one (OpenTelemetry's no-op unless the program installs an SDK).
	TracerProvider trace.TracerProvider
	// WorkerServers, if set, limits the servers this process runs workers for
	// (others are hosted by `mcpbus worker` processes); empty runs them all.
	WorkerServers []string
	// Services, if set, are the only services this process runs (ServiceNames);
	// empty runs them all. With NATSURL set, the others run elsewhere on the
	// same NATS; "nats" alone runs just the embedded server.
	Services []string
	// BodyReadTimeout bounds reading one request body (0: the ingress's
	// default, ingress.DefaultBodyReadTimeout).
	BodyReadTimeout time.Duration
	// BusUsers may connect to the embedded NATS server besides the in-process
	// services and the config's general_settings.mcp_bus_users (tests).
	BusUsers []bus.BusUser
	// AdminListen, if set, serves this process's /metrics and
	// /health/liveliness|readiness on a listener of its own (adminhttp), for
	// processes without the ingress (split services).
	AdminListen string
	// RouterOnly makes the ingress send every message through the router, even
	// a request the router would only forward to one server's workers
	// (ingress.Options.RouterOnly); for comparisons.
	RouterOnly bool
	// Routes, if set, are the only route families the ingress serves
	// (`--routes`; ingress.Options.Routes); the in-process ingress's bus
	// user is limited to their subjects too.
	Routes []bus.RouteFamily
}

// state is how this process's services create buckets and streams:
// general_settings.nats_replicas on an external NATS; the embedded server is
// one node, so its state is kept once whatever the setting.
func (o Options) state() bus.StatePolicy {
	p := bus.StatePolicy{Replicas: bus.Replicas(o.Config.NATSReplicas), Log: o.Log}
	if o.NATSURL == "" {
		p.Replicas = 1
	}
	return p
}

// ServiceNames are the services one process can run (Options.Services).
var ServiceNames = []string{"nats", "auth", "registry", "router", "workers", "llm", "agents", "ingress"}

// runs reports whether this process runs service name.
func (o Options) runs(name string) bool {
	if len(o.Services) == 0 {
		return true
	}
	for _, s := range o.Services {
		if s == name {
			return true
		}
	}
	return false
}

// checkServices rejects an unknown service name, and a split deployment
// without a NATS for the services to meet on.
func (o Options) checkServices() error {
	for _, s := range o.Services {
		known := false
		for _, n := range ServiceNames {
			known = known || s == n
		}
		if !known {
			return fmt.Errorf("unknown service %q (known: %v)", s, ServiceNames)
		}
	}
	if len(o.Services) > 0 && o.NATSURL == "" && !o.runs("nats") {
		return errors.New("running only some services needs the NATS the others use: set --nats nats://host:port")
	}
	if o.NATSURL != "" && len(o.Services) > 0 && o.runs("nats") {
		return errors.New(`service "nats" runs the embedded server; it cannot be combined with --nats`)
	}
	return nil
}

// Gateway is a running all-in-one mcpbus.
type Gateway struct {
	ns       *server.Server
	conns    []*nats.Conn
	admin    *adminhttp.Server // Options.AdminListen
	services []micro.Service
	workers  *toolworkers.Manager
	agents   *agentworkers.Service
	ing      *ingress.Ingress
	srv      *http.Server
	ln       net.Listener
	cancel   context.CancelFunc
	secrets  *bus.SecretKey
	// userCreds is the per-user credential bucket, made by the registry
	// (services.go) and written by it only.
	userCreds jetstream.KeyValue
	// pins is the tool pins bucket (bus/pins.go), made by the registry.
	pins     jetstream.KeyValue
	dataLock *dataLock // the embedded NATS's data directory (datalock.go)
	log      *slog.Logger
	// served delivers the first fatal error: the HTTP server stopped, or
	// the NATS server closed one of the services' connections.
	served  chan error
	closing atomic.Bool
}

// Start brings every service up and starts serving HTTP. On error everything
// already started is stopped again.
func Start(ctx context.Context, o Options) (_ *Gateway, err error) {
	if o, err = o.checked(); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.Background())
	g := &Gateway{cancel: cancel, log: o.Log, served: make(chan error, 1)}
	defer func() {
		if err != nil {
			g.Close(context.Background())
		}
	}()

	connect, err := g.startNATS(o)
	if err != nil {
		return nil, err
	}
	if err := g.loadSecretKey(o); err != nil {
		return nil, err
	}
	if len(o.Services) == 1 && o.Services[0] == "nats" {
		return g, nil
	}
	reg, err := g.startServices(ctx, runCtx, o, g.connector(connect))
	if err != nil {
		return nil, err
	}
	if err := g.serve(o, reg); err != nil {
		return nil, err
	}
	return g, nil
}

// checked is o with its defaults, or why it cannot start.
func (o Options) checked() (Options, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	if o.Config == nil {
		return o, errors.New("gateway: no config")
	}
	if err := o.checkServices(); err != nil {
		return o, err
	}
	if o.runs("ingress") {
		if err := checkOpenMode(o.Config, o.Listen); err != nil {
			return o, err
		}
	}
	return o, nil
}

// loadSecretKey loads the key that seals server credentials (secrets.go),
// for the services that read or write them.
func (g *Gateway) loadSecretKey(o Options) error {
	if !o.runs("registry") && !o.runs("workers") && !o.runs("agents") {
		return nil
	}
	var keySource string
	var err error
	if g.secrets, keySource, err = secretKey(o); err != nil {
		return err
	}
	if keySource != "" {
		o.Log.Debug("server credentials are sealed at rest", "key", keySource)
	}
	return nil
}

// connector is connect for the services of this process: each connection is
// kept (g.conns, closed by Close) and watched (watchClosed).
func (g *Gateway) connector(connect func(string) (*nats.Conn, error)) func(string) (*nats.Conn, error) {
	return func(name string) (*nats.Conn, error) {
		nc, err := connect(name)
		if err == nil {
			g.conns = append(g.conns, nc)
			g.watchClosed(nc, name)
		}
		return nc, err
	}
}

// serve makes sure the NATS server has every service's subscriptions, then
// starts the admin listener (Options.AdminListen) and the HTTP ingress.
func (g *Gateway) serve(o Options, reg *prometheus.Registry) (err error) {
	// Each service subscribed on its own connection; a round trip on each makes
	// sure the server has every subscription before the first request arrives.
	for _, nc := range g.conns {
		if err := nc.FlushTimeout(5 * time.Second); err != nil {
			return fmt.Errorf("nats: %w", err)
		}
	}
	if o.AdminListen != "" {
		if g.admin, err = adminhttp.Start(adminhttp.Options{Addr: o.AdminListen, Gatherer: reg, Log: o.Log,
			Conns: func() []*nats.Conn { return g.conns }}); err != nil {
			return err
		}
	}
	if g.ing != nil {
		g.ln, err = net.Listen("tcp", o.Listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", o.Listen, err)
		}
		g.srv = &http.Server{Handler: g.ing.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
		go func() { g.served <- g.srv.Serve(g.ln) }()
	}
	return nil
}

// startNATS starts the embedded server (or checks the external one) and returns
// how services connect to it.
func (g *Gateway) startNATS(o Options) (func(string) (*nats.Conn, error), error) {
	if o.NATSURL != "" {
		// Every service of this process joins as the process's user
		// (MCPBUS_NATS_USER / _PASSWORD / _CREDS), which must hold their roles.
		return func(name string) (*nats.Conn, error) {
			join := o.NATSConnect
			join.Name, join.Log = name, o.Log
			return natsnode.Connect(o.NATSURL, natsnode.CredentialsFromEnv(join, o.Env))
		}, nil
	}
	// The in-process services: a user each, with a password that exists
	// only in this process, usable only in-process.
	users := map[string]bus.BusUser{}
	for name, roles := range inProcessRoles {
		u := bus.BusUser{User: name, Password: bus.NewPassword(), Roles: roles, InProcess: true}
		if name == "mcpbus-workers" {
			u.Servers = o.WorkerServers
		}
		if name == "mcpbus-ingress" {
			u.Routes = o.Routes
		}
		users[name] = u
	}
	all := append([]bus.BusUser(nil), o.Config.BusUsers...)
	all = append(all, o.BusUsers...)
	for _, u := range users {
		all = append(all, u)
	}
	lock, err := lockDataDir(o.DataDir) // datalock.go
	if err != nil {
		return nil, err
	}
	g.dataLock = lock
	node := o.NATSNode
	node.DataDir, node.Listen, node.Users = o.DataDir, o.NATSListen, all
	ns, err := natsnode.StartEmbedded(node)
	if err != nil {
		return nil, err
	}
	g.ns = ns
	return func(name string) (*nats.Conn, error) {
		u, ok := users[name]
		if !ok {
			return nil, fmt.Errorf("no bus user for connection %s", name)
		}
		return natsnode.ConnectInProcess(ns, natsnode.ConnectOptions{Name: name, User: u.User, Password: u.Password, Log: o.Log})
	}, nil
}

// inProcessRoles are the connections of the in-process services and what
// each may do on the bus.
var inProcessRoles = map[string][]bus.Role{
	"mcpbus-auth":     {bus.RoleAuth},
	"mcpbus-registry": {bus.RoleRegistry},
	"mcpbus-servers":  {bus.RoleServers},
	"mcpbus-router":   {bus.RoleRouter},
	"mcpbus-workers":  {bus.RoleWorkers},
	"mcpbus-ingress":  {bus.RoleIngress},
	"mcpbus-llm":      {bus.RoleLLM},
	"mcpbus-agents":   {bus.RoleAgents},
}

// watchClosed makes a connection the NATS server closes fatal. nats.go
// reconnects after a lost connection, but not after the server closed it for
// a protocol error (nats-server's -ERR): the services on it would answer
// nothing until a restart, so the gateway stops (Done) and `serve` exits
// non-zero for a supervisor to restart it.
func (g *Gateway) watchClosed(nc *nats.Conn, name string) {
	nc.SetClosedHandler(func(c *nats.Conn) {
		if g.closing.Load() {
			return
		}
		err := fmt.Errorf("the NATS server closed bus connection %s (%v): mcpbus cannot serve without it", name, c.LastError())
		g.log.Error("bus connection closed", "connection", name, "err", c.LastError())
		select {
		case g.served <- err:
		default:
		}
	})
}

func (g *Gateway) add(svc micro.Service, err error) error {
	if err != nil {
		return err
	}
	g.services = append(g.services, svc)
	return nil
}

// URL is the gateway's base HTTP URL.
// It is "" when this process runs no ingress.
func (g *Gateway) URL() string {
	if g.ln == nil {
		return ""
	}
	return "http://" + g.ln.Addr().String()
}

// AdminURL is the admin listener's base URL ("" without one).
func (g *Gateway) AdminURL() string {
	if g.admin == nil {
		return ""
	}
	return g.admin.URL()
}

// NATSURL is the embedded server's client URL, or "" when it listens on no port.
func (g *Gateway) NATSURL() string {
	if g.ns == nil || g.ns.Addr() == nil {
		return ""
	}
	return g.ns.ClientURL()
}

// Done delivers the first fatal error: the HTTP server's exit error, or a bus
// connection the NATS server closed (watchClosed).
func (g *Gateway) Done() <-chan error { return g.served }

// Close stops taking requests, lets in-flight ones finish (bounded by ctx),
// drains the bus connections and stops the embedded server.
func (g *Gateway) Close(ctx context.Context) error {
	g.closing.Store(true)
	var errs []error
	if g.admin != nil {
		_ = g.admin.Close(ctx)
	}
	if g.srv != nil {
		if err := g.srv.Shutdown(ctx); err != nil {
			// The drain time ran out: the calls still running get an error
			// now, and a moment to send it.
			n := g.ing.Abort()
			grace, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_ = g.srv.Shutdown(grace)
			cancel()
			errs = append(errs, fmt.Errorf("drain time ran out: %d call(s) still running were ended with an error", n))
		}
	}
	if g.ing != nil {
		g.ing.Close()
	}
	if g.workers != nil {
		g.workers.Stop()
	}
	if g.agents != nil {
		_ = g.agents.Stop()
	}
	for _, s := range g.services {
		_ = s.Stop()
	}
	g.cancel()
	for _, nc := range g.conns {
		_ = nc.Drain()
	}
	for _, nc := range g.conns {
		for i := 0; i < 100 && !nc.IsClosed(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		nc.Close()
	}
	if g.ns != nil {
		g.ns.Shutdown()
		g.ns.WaitForShutdown()
	}
	g.dataLock.release() // after the store is closed
	return errors.Join(errs...)
}

// checkOpenMode enforces the one rule for running without a master key: only on
// loopback, where no one else can reach the gateway.
func checkOpenMode(cfg *config.File, listen string) error {
	if cfg.MasterKey != "" {
		return nil
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("listen address %q: %v", listen, err)
	}
	if isLoopback(host) {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s without general_settings.master_key: set a master key, or listen on 127.0.0.1", listen)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
