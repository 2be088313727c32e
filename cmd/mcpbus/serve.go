package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/gateway"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/natsnode"
)

// serve implements `mcpbus serve`: every service in one process.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return serveAs(ctx, "serve", args, stdout, stderr)
}

// serveAs is serve run as the command name (serve, or one service: auth,
// registry, router, llm, agents, ingress, nats), which its help and errors name.
func serveAs(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	f, err := parseServeFlags(name, args, stdout, stderr)
	if err != nil {
		return err
	}
	addr, err := listenAddr(f.listen, f.host, f.port)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	stopDebug, err := startDebug(f.debugListen, log)
	if err != nil {
		return err
	}
	defer stopDebug()
	cfg, err := loadServeConfig(f.cfgPath, f.natsReplicas, configParts(name, f), log)
	if err != nil {
		return err
	}
	node, err := f.node.options()
	if err != nil {
		return err
	}
	if name == "nats" && f.natsURL == "" && len(cfg.BusUsers) == 0 && len(node.NATSUsers) == 0 {
		return errNoBusUsers
	}
	if f.natsURL == "" && !cfg.NATSJoin.IsZero() {
		log.Warn("general_settings.nats_creds, nats_nkey and nats_tls_* are for joining an external NATS (--nats); the embedded server's services join it in process")
	}
	only := splitServers(f.services)
	tr, err := setupTracing(ctx, log) // telemetry.go: OTLP export only when OTEL_EXPORTER_OTLP_*ENDPOINT is set
	if err != nil {
		return err
	}
	defer tr.flush(log) // after the gateway has closed, so the spans of drained calls go too
	start := time.Now()
	g, err := gateway.Start(ctx, gateway.Options{Config: cfg, Listen: addr, DataDir: f.data, NATSURL: f.natsURL, NATSConnect: natsJoin(*f.natsSecurity, cfg.NATSJoin), NATSListen: f.natsListen, Log: log,
		TracerProvider: tr.tracerProvider(), Services: only, AdminListen: f.adminListen,
		NATSNode: node, Routes: f.routes})
	if err != nil {
		return err
	}
	logStarted(log, cfg, g)
	if g.URL() == "" {
		log.Info("mcpbus services running", "services", only, "startup", time.Since(start).Round(time.Millisecond))
		fmt.Fprintf(stdout, "mcpbus services %s running\n", strings.Join(only, ","))
		return runServices(ctx, g, log, f.drainTimeout)
	}
	log.Info("mcpbus listening on "+g.URL(), "servers", len(cfg.Servers), "startup", time.Since(start).Round(time.Millisecond))
	served, external := bus.JoinRouteFamilies(bus.RouteFamilies), bus.JoinRouteFamilies(bus.DefaultExternalRoutes)
	if f.routes != nil {
		served = bus.JoinRouteFamilies(f.routes)
	}
	if cfg.ExternalRoutes != nil {
		external = bus.JoinRouteFamilies(cfg.ExternalRoutes)
	}
	log.Info("route families", "served", served, "external_callers", external)
	metricsAccess := "internal callers without a key; external callers refused (external_routes)"
	if strings.Contains(","+external+",", ",metrics,") {
		metricsAccess = "internal callers without a key; external callers only with the master key (else 404)"
	}
	log.Info("metrics and health", "metrics", g.URL()+"/metrics", "metrics_access", metricsAccess,
		"liveliness", g.URL()+"/health/liveliness", "readiness", g.URL()+"/health/readiness")
	log.Debug("access log on: one 'mcp request' line per MCP request (--log-level debug)")
	fmt.Fprintf(stdout, "mcpbus listening on %s\n", g.URL())
	return runListening(ctx, g, log, f.drainTimeout)
}

// errNoBusUsers refuses a `mcpbus nats` that would admit nobody.
var errNoBusUsers = errors.New("nats: no bus users: give --nats-users FILE (written by mcpbus nats-config) or --config FILE with general_settings.mcp_bus_users; without them no other process could join")

// serveFlags are the flags of serve (and of each service's command).
type serveFlags struct {
	cfgPath, listen, host                                               string
	port                                                                int
	data, natsURL, natsReplicas                                         string
	natsListen, logFormat, logLevel, adminListen, debugListen, services string
	routes                                                              []bus.RouteFamily
	drainTimeout                                                        time.Duration
	natsSecurity                                                        *natsnode.ConnectOptions
	node                                                                *nodeFlags // node_flags.go
}

// parseServeFlags parses serve's flags; a config file is required. With
// --nats, the embedded server is off and so is its listener.
func parseServeFlags(name string, args []string, stdout, stderr io.Writer) (serveFlags, error) {
	var f serveFlags
	fs := newFlagSet(name, args, stdout, stderr)
	cfgHelp := "LiteLLM-compatible config file (required)"
	if name == "nats" {
		cfgHelp = "config file whose general_settings.mcp_bus_users may join (or give --nats-users)"
	}
	fs.StringVar(&f.cfgPath, "config", "", cfgHelp)
	fs.StringVar(&f.listen, "listen", defaultListen, "HTTP listen address host:port")
	fs.StringVar(&f.host, "host", "", "listen host (LiteLLM compatible; overrides --listen's host)")
	fs.IntVar(&f.port, "port", 0, "listen port (LiteLLM compatible; overrides --listen's port)")
	fs.StringVar(&f.data, "data", "./data", "data directory for the embedded NATS JetStream store")
	fs.StringVar(&f.natsURL, "nats", "", "use an external NATS server (nats://host:port) instead of the embedded one")
	f.node = registerNodeFlags(fs)
	fs.StringVar(&f.natsReplicas, "nats-replicas", "", "copies JetStream keeps of each bucket and stream on --nats: 1-5 or auto (default: general_settings.nats_replicas, else auto: 3 on a cluster of 3+ servers)")
	fs.StringVar(&f.natsListen, "nats-listen", "127.0.0.1:4222", "embedded NATS listener for CLIs and extra workers (loopback, unless it has --nats-server-tls-*), or off")
	f.natsSecurity = natsSecurityFlags(fs)
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 15*time.Second, "on shutdown, how long in-flight calls may finish; those still running then get a JSON-RPC error")
	fs.StringVar(&f.adminListen, "admin-listen", "", "serve this process's /metrics and /health/liveliness|readiness on this host:port, for processes without the ingress (off by default)")
	fs.StringVar(&f.debugListen, "debug-listen", "", "serve pprof and expvar on this loopback host:port (off by default)")
	fs.StringVar(&f.services, "services", "", "run only these services, comma-separated, of "+strings.Join(gateway.ServiceNames, ",")+
		" (default all); the others run in other processes on the same --nats")
	var routes string
	if name == "serve" || name == "ingress" {
		fs.StringVar(&routes, "routes", "", "serve only these route families, comma-separated, of "+bus.JoinRouteFamilies(bus.RouteFamilies)+
			" (default all; health is always served): --routes mcp for a public edge that holds no path to the LLM providers' keys")
	}
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if routes != "" {
		fams, err := bus.ParseRouteFamilies(strings.Split(routes, ","))
		if err != nil {
			return f, fmt.Errorf("%s: --routes%s", name, err)
		}
		f.routes = fams
		if only := splitServers(f.services); len(only) > 0 && !slices.Contains(only, "ingress") {
			return f, fmt.Errorf("%s: --routes limits the ingress, which --services %s does not run", name, f.services)
		}
	}
	if f.cfgPath == "" && name != "nats" {
		return f, fmt.Errorf("%s: --config FILE is required", name)
	}
	if f.cfgPath == "" && f.node.users == "" && f.natsURL == "" {
		return f, errNoBusUsers
	}
	if f.natsURL != "" && f.node.set() {
		return f, fmt.Errorf("%s: %s configure the embedded NATS server, which --nats turns off", name, nodeFlagNames)
	}
	if f.natsURL != "" {
		f.natsListen = "off"
	}
	if f.natsURL == "" && *f.natsSecurity != (natsnode.ConnectOptions{}) {
		// The embedded server's services join it in-process, as users
		// that exist only in this process: the flags would do nothing.
		return f, fmt.Errorf("%s: --nats-creds, --nats-nkey and --nats-tls-* are for joining an external NATS: give --nats URL", name)
	}
	return f, nil
}

// configParts are the parts of the config file a process leaves to
// others, so their os.environ/ variables need not be set in it: with an
// external NATS, the bus users' passwords (that NATS admits them); without
// the registry and workers, the servers (the others read them from the
// registry's bucket); without the LLM service, the models; without the
// agent workers, the agents; and mcpbus nats reads neither.
func configParts(name string, f serveFlags) config.Parts {
	only := splitServers(f.services)
	serversUsed := len(only) == 0 || slices.Contains(only, "registry") || slices.Contains(only, "workers")
	modelsUsed := len(only) == 0 || slices.Contains(only, "llm")
	agentsUsed := len(only) == 0 || slices.Contains(only, "agents")
	return config.Parts{
		SkipBusUsers: f.natsURL != "",
		SkipServers:  name == "nats" || f.natsURL != "" && !serversUsed,
		SkipModels:   name == "nats" || f.natsURL != "" && !modelsUsed,
		SkipAgents:   name == "nats" || f.natsURL != "" && !agentsUsed,
	}
}

// loadServeConfig loads the config file, logs its warnings, and applies
// --nats-replicas (when set) over general_settings.nats_replicas.
func loadServeConfig(path, replicas string, parts config.Parts, log *slog.Logger) (*config.File, error) {
	var cfg *config.File
	var err error
	if path == "" { // mcpbus nats: the defaults
		cfg, err = config.Parse("(no --config)", []byte("{}"), os.LookupEnv)
	} else {
		cfg, err = config.LoadParts(path, parts)
	}
	if err != nil {
		return nil, err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	if replicas != "" {
		if cfg.NATSReplicas, err = parseReplicas(replicas); err != nil {
			return nil, err
		}
	}
	for _, w := range xffWarnings(cfg) {
		log.Warn(w)
	}
	return cfg, nil
}

// logStarted logs what the operator should know of a started gateway: an
// open gateway, the embedded NATS and its users, the admin listener.
func logStarted(log *slog.Logger, cfg *config.File, g *gateway.Gateway) {
	if cfg.MasterKey == "" {
		log.Warn("no general_settings.master_key: the gateway runs OPEN (no key required) because it listens on loopback only")
	}
	if u := g.NATSURL(); u != "" {
		log.Info("embedded NATS listening", "url", u, "users", len(cfg.BusUsers))
		if len(cfg.BusUsers) == 0 {
			log.Info("no general_settings.mcp_bus_users: only this process's own services can use the bus (list users for mcpbus worker, mcpbus usage, split services; docs/SECURITY.md)")
		}
	}
	if u := g.AdminURL(); u != "" {
		log.Info("admin listener: metrics and health", "metrics", u+"/metrics", "readiness", u+"/health/readiness")
	}
}

// runServices runs a gateway without the HTTP ingress until ctx ends or a
// fatal error, then closes it, letting in-flight calls drain for up to
// drain. It returns the fatal error, else Close's.
func runServices(ctx context.Context, g *gateway.Gateway, log *slog.Logger, drain time.Duration) error {
	var fatal error
	select {
	case <-ctx.Done():
	case fatal = <-g.Done():
		log.Error("stopping", "err", fatal)
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	if err := g.Close(sctx); fatal == nil {
		return err
	}
	return fatal
}

// runListening runs a gateway serving HTTP until ctx ends (then it drains
// in-flight requests for up to drain, and returns Close's error) or the
// HTTP server stops (then it returns why).
func runListening(ctx context.Context, g *gateway.Gateway, log *slog.Logger, drain time.Duration) error {
	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight requests")
	case err := <-g.Done():
		log.Error("stopping", "err", err)
		sctx, cancel := context.WithTimeout(context.Background(), drain)
		defer cancel()
		_ = g.Close(sctx)
		return err
	}
	sctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	return g.Close(sctx)
}

func listenAddr(listen, host string, port int) (string, error) {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("--listen %q: want host:port", listen)
	}
	if host != "" {
		h = host
	}
	if port != 0 {
		p = strconv.Itoa(port)
	}
	return net.JoinHostPort(h, p), nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

// xffWarnings names forwarded-for settings that, as combined, do not do what
// they seem to: X-Forwarded-For counts only when use_x_forwarded_for is on and
// the direct peer is in mcp_trusted_proxy_ranges.
func xffWarnings(cfg *config.File) []string {
	var out []string
	switch {
	case cfg.UseXForwardedFor && len(cfg.TrustedProxyRanges) == 0:
		out = append(out, "general_settings.use_x_forwarded_for is on but mcp_trusted_proxy_ranges is empty: X-Forwarded-For is ignored and callers are classified by their direct address; list your proxies' addresses in mcp_trusted_proxy_ranges")
	case !cfg.UseXForwardedFor && (len(cfg.TrustedProxyRanges) > 0 || cfg.XFFNumTrustedHops > 1):
		out = append(out, "general_settings.mcp_trusted_proxy_ranges / mcp_xff_num_trusted_hops have no effect while use_x_forwarded_for is off: callers are classified by their direct address")
	}
	return out
}

// parseReplicas reads --nats-replicas: auto (0) or 1 to bus.MaxReplicas.
func parseReplicas(s string) (int, error) {
	if strings.EqualFold(strings.TrimSpace(s), "auto") {
		return 0, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n < 1 || n > bus.MaxReplicas {
		return 0, fmt.Errorf("--nats-replicas: %q must be auto or a whole number from 1 to %d", s, bus.MaxReplicas)
	}
	return n, nil
}
