package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/adminhttp"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/gateway"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// workerCmd implements `mcpbus worker`: tool workers for every server in the
// registry (or a subset) against an external NATS, following registry changes,
// until ctx ends (SIGINT, SIGTERM); then in-flight calls finish and it stops.
func workerCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseWorkerFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	wo, only, signed, err := f.workerOptions()
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	tr, err := setupTracing(ctx, log) // telemetry.go: OTLP export only when OTEL_EXPORTER_OTLP_*ENDPOINT is set
	if err != nil {
		return err
	}
	defer tr.flush(log) // runs last, after the workers stopped
	join := *f.natsSecurity
	join.Name, join.Log = "mcpbus-worker", log
	nc, err := natsnode.Connect(f.natsURL, natsnode.CredentialsFromEnv(join, os.LookupEnv))
	if err != nil {
		return err
	}
	connClosed := make(chan error, 1)
	nc.SetClosedHandler(func(c *nats.Conn) { connClosed <- c.LastError() })
	defer drainWorkerConn(nc)
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	defer cancelStart()
	// A worker for every server knows every server's name, for the
	// x-mcp-{server}-{header} matching; one limited to --servers reads only
	// its own records (its bus user may read no others) and gets only its
	// own per-request headers anyway (the ingress and router filter them).
	if len(only) == 0 {
		cacheCtx, stopCache := context.WithCancel(context.Background())
		defer stopCache()
		if wo.Servers, err = servercache.Follow(cacheCtx, nc, log); err != nil {
			return err
		}
	}
	reg, metrics, err := gateway.NewMetricsRegistry(func() []*nats.Conn { return []*nats.Conn{nc} })
	if err != nil {
		return err
	}
	wo.Log, wo.TracerProvider, wo.Metrics = log, tr.tracerProvider(), metrics
	signCtx, stopSigning := context.WithCancel(context.Background())
	defer stopSigning()
	wo.Signer = gateway.WorkerSigner(signCtx, nc, signed, wo.Secrets, log) // the config's mcp_jwt_signer
	m, err := gateway.StartWorkers(startCtx, nc, toolworkers.ManagerOptions{Worker: wo, Only: only, DrainTimeout: f.drain})
	if err != nil {
		return err
	}
	return runWorkers(ctx, m, nc, connClosed, reg, log, f, only, stdout)
}

// workerFlags are the flags of `mcpbus worker`.
type workerFlags struct {
	natsURL, servers, cfgPath, adminListen, logFormat, logLevel string
	allowStdio                                                  bool
	maxInFlight                                                 int
	natsSecurity                                                *natsnode.ConnectOptions
	drain                                                       time.Duration
}

// parseWorkerFlags parses the flags of `mcpbus worker`, which takes no
// arguments.
func parseWorkerFlags(args []string, stdout, stderr io.Writer) (workerFlags, error) {
	var f workerFlags
	fs := newFlagSet("worker", args, stdout, stderr)
	fs.StringVar(&f.natsURL, "nats", "nats://127.0.0.1:4222", "NATS server to join (the one `mcpbus serve` exposes on --nats-listen, or a cluster)")
	f.natsSecurity = natsSecurityFlags(fs)
	fs.StringVar(&f.servers, "servers", "", "comma-separated server names to host (default: every server in the registry)")
	fs.BoolVar(&f.allowStdio, "allow-stdio-from-api", false, "run stdio servers whose record came from the API, not the config file (runs commands given over the API)")
	fs.StringVar(&f.cfgPath, "config", "", "config file whose stdio servers may run here (a stdio record runs only if this file names its command, args and env)")
	fs.IntVar(&f.maxInFlight, "max-in-flight", 0, "concurrent upstream calls per worker (default 256)")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "on shutdown, how long in-flight calls may finish")
	fs.StringVar(&f.adminListen, "admin-listen", "", "serve /metrics and /health/liveliness|readiness on this host:port (off by default)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("worker: unexpected argument %q", fs.Arg(0))
	}
	return f, nil
}

// workerOptions are the workers' options the flags give (the config file's
// servers and audit setting, the sealing key from the environment), the servers to host
// (none: all) and the config file's signed calls (nil: none).
func (f workerFlags) workerOptions() (toolworkers.Options, []string, *config.SignedCalls, error) {
	o := toolworkers.Options{MaxInFlight: f.maxInFlight, AllowAPIStdio: f.allowStdio}
	var signed *config.SignedCalls
	if f.cfgPath != "" {
		// The bus users' passwords are the NATS server's to know.
		cfg, err := config.LoadParts(f.cfgPath, config.Parts{SkipBusUsers: true, SkipModels: true})
		if err != nil {
			return o, nil, nil, err
		}
		o.ConfigServers, signed = cfg.Servers, cfg.SignedCalls
		o.Audit = cfg.Audit             // general_settings.mcp_audit: the workers record calls
		o.ToolPinning = cfg.ToolPinning // general_settings.mcp_tool_pinning
		// Guardrails of mcpbus's kinds (docs/GUARDS.md).
		o.Guards = cfg.Guards
		// natsSecurity is a pointer: the flags, completed by the file.
		*f.natsSecurity = natsJoin(*f.natsSecurity, cfg.NATSJoin)
	}
	secrets, err := bus.SecretKeyFromEnv(os.LookupEnv)
	if err != nil {
		return o, nil, nil, fmt.Errorf("worker: %w", err)
	}
	o.Secrets = secrets
	only := splitServers(f.servers)
	if f.servers != "" && len(only) == 0 {
		return o, nil, nil, fmt.Errorf("worker: --servers %q names no server", f.servers)
	}
	return o, only, signed, nil
}

// drainWorkerConn drains nc, waiting up to 2 s for it to close, then closes it.
func drainWorkerConn(nc *nats.Conn) {
	_ = nc.Drain()
	for i := 0; i < 200 && !nc.IsClosed(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	nc.Close()
}

// runWorkers runs the started workers m until ctx ends or the NATS
// connection closes (connClosed), with the admin listener when asked; it
// stops m before it returns.
func runWorkers(ctx context.Context, m *toolworkers.Manager, nc *nats.Conn, connClosed <-chan error, reg *prometheus.Registry,
	log *slog.Logger, f workerFlags, only []string, stdout io.Writer) error {
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		m.Stop()
		return fmt.Errorf("nats: %w", err)
	}
	scope := "all servers"
	if len(only) > 0 {
		scope = "servers " + strings.Join(only, ",")
	}
	if f.adminListen != "" {
		admin, err := adminhttp.Start(adminhttp.Options{Addr: f.adminListen, Gatherer: reg, Log: log, Conns: func() []*nats.Conn { return []*nats.Conn{nc} }})
		if err != nil {
			m.Stop()
			return err
		}
		defer admin.Close(context.Background())
		log.Info("metrics and health", "metrics", admin.URL()+"/metrics", "readiness", admin.URL()+"/health/readiness")
	}
	hosted := m.Hosted()
	log.Info("mcpbus worker ready", "nats", bus.RedactURL(f.natsURL), "scope", scope, "hosting", strings.Join(hosted, ","))
	fmt.Fprintf(stdout, "mcpbus worker ready on %s: %s (%d running now)\n", bus.RedactURL(f.natsURL), scope, len(hosted))

	select {
	case <-ctx.Done():
		log.Info("shutting down: draining in-flight calls")
	case err := <-connClosed:
		// nats.go does not reconnect a connection the server closed for a
		// protocol error: exit non-zero so a supervisor starts a fresh one.
		log.Error("NATS connection closed; stopping", "err", err)
		m.Stop()
		return fmt.Errorf("the NATS connection was closed (%v): exiting so that a supervisor restarts the worker", err)
	}
	m.Stop()
	return nil
}

// splitServers splits a comma-separated list of names, dropping blanks and
// duplicates.
func splitServers(s string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" && !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
