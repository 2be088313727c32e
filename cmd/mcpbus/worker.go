package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/adminhttp"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// workerCmd implements `mcpbus worker`: tool workers for every server in the
// registry (or a subset) against an external NATS, following registry changes,
// until ctx ends (SIGINT, SIGTERM); then in-flight calls finish and it stops.
func workerCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("worker", args, stdout, stderr)
	natsURL := fs.String("nats", "nats://127.0.0.1:4222", "NATS server to join (the one `mcpbus serve` exposes on --nats-listen, or a cluster)")
	servers := fs.String("servers", "", "comma-separated server names to host (default: every server in the registry)")
	allowStdio := fs.Bool("allow-stdio-from-api", false, "run stdio servers whose record came from the API, not the config file (runs commands given over the API)")
	cfgPath := fs.String("config", "", "config file whose stdio servers may run here (a stdio record runs only if this file names its command, args and env)")
	maxInFlight := fs.Int("max-in-flight", 0, "concurrent upstream calls per worker (default 256)")
	drain := fs.Duration("drain-timeout", 10*time.Second, "on shutdown, how long in-flight calls may finish")
	adminListen := fs.String("admin-listen", "", "serve /metrics and /health/liveliness|readiness on this host:port (off by default)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("worker: unexpected argument %q", fs.Arg(0))
	}
	var configServers []bus.ServerSpec
	if *cfgPath != "" {
		cfg, err := config.Load(*cfgPath)
		if err != nil {
			return err
		}
		configServers = cfg.Servers
	}
	secrets, err := bus.SecretKeyFromEnv(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	only := splitServers(*servers)
	if *servers != "" && len(only) == 0 {
		return fmt.Errorf("worker: --servers %q names no server", *servers)
	}
	log, err := newLogger(stderr, *logFormat, *logLevel)
	if err != nil {
		return err
	}
	tr, err := setupTracing(ctx, log) // telemetry.go: OTLP export only when OTEL_EXPORTER_OTLP_*ENDPOINT is set
	if err != nil {
		return err
	}
	defer tr.flush(log) // runs last, after the workers stopped
	nc, err := bus.Connect(*natsURL, bus.CredentialsFromEnv(bus.ConnectOptions{Name: "mcpbus-worker", Log: log}, os.LookupEnv))
	if err != nil {
		return err
	}
	connClosed := make(chan error, 1)
	nc.SetClosedHandler(func(c *nats.Conn) { connClosed <- c.LastError() })
	defer func() {
		_ = nc.Drain()
		for i := 0; i < 200 && !nc.IsClosed(); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		nc.Close()
	}()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	startCtx, cancelStart := context.WithTimeout(ctx, 30*time.Second)
	defer cancelStart()
	// A worker for every server knows every server's name, for the
	// x-mcp-{server}-{header} matching; one limited to --servers reads only
	// its own records (its bus user may read no others) and gets only its
	// own per-request headers anyway (the ingress and router filter them).
	var cache *bus.ServerCache
	if len(only) == 0 {
		cacheCtx, stopCache := context.WithCancel(context.Background())
		defer stopCache()
		if cache, err = bus.FollowServers(cacheCtx, nc, log); err != nil {
			return err
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics, err := toolworkers.NewMetrics(reg)
	if err != nil {
		return err
	}
	m, err := toolworkers.StartManager(startCtx, nc, toolworkers.ManagerOptions{
		Worker: toolworkers.Options{Log: log, MaxInFlight: *maxInFlight, Servers: cache, JetStream: js, AllowAPIStdio: *allowStdio,
			TracerProvider: tr.tracerProvider(), ConfigServers: configServers, Secrets: secrets, Metrics: metrics},
		Only:         only,
		DrainTimeout: *drain,
	})
	if err != nil {
		return err
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		m.Stop()
		return fmt.Errorf("nats: %w", err)
	}
	scope := "all servers"
	if len(only) > 0 {
		scope = "servers " + strings.Join(only, ",")
	}
	if *adminListen != "" {
		admin, err := adminhttp.Start(adminhttp.Options{Addr: *adminListen, Gatherer: reg, Log: log, Conns: func() []*nats.Conn { return []*nats.Conn{nc} }})
		if err != nil {
			m.Stop()
			return err
		}
		defer admin.Close(context.Background())
		log.Info("metrics and health", "metrics", admin.URL()+"/metrics", "readiness", admin.URL()+"/health/readiness")
	}
	hosted := m.Hosted()
	log.Info("mcpbus worker ready", "nats", bus.RedactURL(*natsURL), "scope", scope, "hosting", strings.Join(hosted, ","))
	fmt.Fprintf(stdout, "mcpbus worker ready on %s: %s (%d running now)\n", bus.RedactURL(*natsURL), scope, len(hosted))

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
