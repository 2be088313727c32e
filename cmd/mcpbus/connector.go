package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/adminhttp"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/gateway"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// `mcpbus connector` serves MCP servers the gateway cannot reach (on a
// laptop, in a private network, a stdio program) from where they are. It
// runs a NATS node of its own that dials the gateway's cluster as a leaf
// node, outbound only, and tool workers for its servers on that node. The
// servers' URLs, commands and credentials come from its own config file and
// never leave its machine; the gateway's config declares them with
// transport connector and decides who may see and call them. Its bus user
// (role connector) lets NATS route to it only its own servers' calls.

// recordsTimeout bounds the wait for the gateway's records of the
// connector's servers once the link is up: a refused read is never
// answered.
const recordsTimeout = 10 * time.Second

// EnvConnectorPassword holds the connector's bus user's password.
const EnvConnectorPassword = "MCPBUS_CONNECTOR_PASSWORD"

// connectorFlags are the flags of `mcpbus connector`.
type connectorFlags struct {
	hub, name, creds, tlsCA, cfgPath, servers, adminListen, logFormat, logLevel string
	maxInFlight                                                                 int
	drain                                                                       time.Duration
}

func parseConnectorFlags(args []string, stdout, stderr io.Writer) (connectorFlags, error) {
	var f connectorFlags
	fs := newFlagSet("connector", args, stdout, stderr)
	fs.StringVar(&f.hub, "hub", "", "the gateway's leaf listener (--nats-leafnodes there): nats-leaf://host:7422 or tls://host:7422, several comma-separated (required)")
	fs.StringVar(&f.name, "name", "", "this connector's bus user, of role connector in the gateway's mcp_bus_users (required); its password in "+EnvConnectorPassword)
	fs.StringVar(&f.creds, "hub-creds", "", "a NATS .creds file to join the hub with, instead of a password")
	fs.StringVar(&f.tlsCA, "hub-tls-ca", "", "CA that verifies the hub's certificate (the link is then TLS)")
	fs.StringVar(&f.cfgPath, "config", "", "config file of the servers this connector serves: their url or command and credentials (required)")
	fs.StringVar(&f.servers, "servers", "", "comma-separated names of the config file's servers to serve (default all)")
	fs.IntVar(&f.maxInFlight, "max-in-flight", 0, "concurrent upstream calls per server (default 256)")
	fs.DurationVar(&f.drain, "drain-timeout", 10*time.Second, "on shutdown, how long in-flight calls may finish")
	fs.StringVar(&f.adminListen, "admin-listen", "", "serve /metrics and /health/liveliness|readiness on this host:port (off by default)")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return f, err
	}
	switch {
	case fs.NArg() > 0:
		return f, fmt.Errorf("connector: unexpected argument %q", fs.Arg(0))
	case f.hub == "":
		return f, errors.New("connector: --hub URL is required: the gateway's leaf listener (mcpbus serve --nats-leafnodes)")
	case f.name == "":
		return f, errors.New("connector: --name is required: this connector's bus user (role connector) in the gateway's general_settings.mcp_bus_users")
	case f.cfgPath == "":
		return f, errors.New("connector: --config FILE is required: the servers it serves")
	}
	return f, nil
}

// connectorSpecs are the servers of cfg this connector serves: only (or
// all), each reachable from here.
func connectorSpecs(cfg *config.File, only []string, path string) ([]bus.ServerSpec, error) {
	var out []bus.ServerSpec
	for _, s := range cfg.Servers {
		if len(only) > 0 && !slices.Contains(only, s.Name) {
			continue
		}
		if s.Transport == config.TransportConnector {
			return nil, fmt.Errorf("%s: mcp_servers.%s: transport connector is for the gateway's config; here, give the server's url or command", path, s.Name)
		}
		out = append(out, s)
	}
	for _, n := range only {
		if !slices.ContainsFunc(out, func(s bus.ServerSpec) bool { return s.Name == n }) {
			return nil, fmt.Errorf("connector: --servers names %q, which %s does not define", n, path)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("connector: %s defines no mcp_servers to serve", path)
	}
	return out, nil
}

// connectorCmd implements `mcpbus connector`.
func connectorCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	f, err := parseConnectorFlags(args, stdout, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return err
	}
	cfg, err := config.LoadParts(f.cfgPath, config.Parts{SkipBusUsers: true, SkipModels: true})
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings {
		log.Warn(w)
	}
	specs, err := connectorSpecs(cfg, splitServers(f.servers), f.cfgPath)
	if err != nil {
		return err
	}
	secrets, err := bus.SecretKeyFromEnv(os.LookupEnv)
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	password, _ := os.LookupEnv(EnvConnectorPassword)
	if f.creds == "" && password == "" {
		return fmt.Errorf("connector: set %s to the password of bus user %s", EnvConnectorPassword, f.name)
	}
	ns, err := natsnode.StartEmbedded(natsnode.EmbeddedOptions{Name: "connector-" + f.name, NoJetStream: true,
		Leaf: &natsnode.LeafRemote{URL: f.hub, User: f.name, Password: password, CredsFile: f.creds, TLSCA: f.tlsCA}})
	if err != nil {
		return fmt.Errorf("connector: %w", err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	ns.SetLoggerV2(leafLog{log.With("hub", bus.RedactURL(f.hub)), &bus.RateLimited{}}, false, false, false)

	nc, err := natsnode.ConnectInProcess(ns, natsnode.ConnectOptions{Name: "mcpbus-connector", User: f.name, Log: log})
	if err != nil {
		return err
	}
	defer drainWorkerConn(nc)
	reg, metrics, err := gateway.NewMetricsRegistry(func() []*nats.Conn { return []*nats.Conn{nc} })
	if err != nil {
		return err
	}
	// No JetStream for OAuth2 tokens: they stay in this process, like every
	// other credential of these servers.
	// The guards of this file (docs/GUARDS.md) run on its servers' calls:
	// built-in ones here; an external one's requests need the hub's guard
	// process and a bus user allowed to ask it, which a connector's is not,
	// so it fails as its fail setting says.
	wo := toolworkers.Options{Log: log, MaxInFlight: f.maxInFlight, ConfigServers: cfg.Servers, Secrets: secrets, Metrics: metrics,
		Guards: cfg.Guards}
	reach, names := map[string]bus.ServerSpec{}, []string(nil)
	for _, s := range specs {
		reach[s.Name], names = s, append(names, s.Name)
		if ignored := config.ConnectorIgnored(s); len(ignored) > 0 {
			log.Warn("the gateway's record decides these fields of a connector's server; this file's values are ignored", "server", s.Name, "fields", strings.Join(ignored, ","))
		}
	}
	if err := awaitHub(ctx, ns, log, f.hub); err != nil {
		log.Info("stopped before the hub answered")
		return nil // asked to stop (SIGINT, SIGTERM) while waiting
	}
	// The gateway's records of these servers: its policy for each, which
	// this connector completes with how to reach the server.
	startCtx, cancelStart := context.WithTimeout(ctx, recordsTimeout)
	defer cancelStart()
	m, err := toolworkers.StartManager(startCtx, nc, toolworkers.ManagerOptions{Worker: wo, Only: names, Reach: reach,
		Source: connectorRecords(nc, names, log), DrainTimeout: f.drain})
	if err != nil {
		// NATS drops, without a word, a request its permissions refuse.
		return fmt.Errorf("connector: no answer for the gateway's records of %s within %s: the gateway's bus user %s (role connector) must list them in its servers, or NATS refuses this connector their subjects (%w)",
			strings.Join(names, ", "), recordsTimeout, f.name, err)
	}
	defer m.Stop()
	for name, err := range m.Failed() {
		log.Error("a server of this connector cannot start; the others are served", "server", name, "err", err)
	}
	for _, n := range names {
		if !slices.Contains(m.Hosted(), n) && m.Failed()[n] == nil {
			log.Warn("the gateway has no record of this server with transport connector: not served until it does", "server", n)
		}
	}
	if f.adminListen != "" {
		admin, err := adminhttp.Start(adminhttp.Options{Addr: f.adminListen, Gatherer: reg, Log: log, Conns: func() []*nats.Conn { return []*nats.Conn{nc} },
			Hub: func() error {
				if ns.NumLeafNodes() == 0 {
					return errors.New("no link to the hub")
				}
				return nil
			}})
		if err != nil {
			return err
		}
		defer admin.Close(context.Background())
	}
	hosted := strings.Join(m.Hosted(), ",")
	log.Info("mcpbus connector joined its hub", "hub", bus.RedactURL(f.hub), "name", f.name, "serving", hosted)
	fmt.Fprintf(stdout, "mcpbus connector %s joined %s: serving %s\n", f.name, bus.RedactURL(f.hub), hosted)
	<-ctx.Done()
	log.Info("shutting down: draining in-flight calls")
	return nil
}

// awaitHub waits until ns's leaf link to the hub is up, saying every 10 s
// that it is still trying; the link itself retries for as long as it
// takes, and returns after a hub outage on its own.
func awaitHub(ctx context.Context, ns *server.Server, log *slog.Logger, hub string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for waited := 0; ns.NumLeafNodes() == 0; waited++ {
		if waited > 0 && waited%200 == 0 {
			log.Warn("still waiting for the hub (reachable? the leaf listener of mcpbus serve --nats-leafnodes? this connector's password?)", "hub", bus.RedactURL(hub))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

// leafLog passes the connector's NATS node's errors and warnings (a
// refused password, an unreachable hub, a permission the hub refused) to
// the connector's log, each kind at most once per bus.WarnEvery: the link
// retries every second while the hub is away.
type leafLog struct {
	log    *slog.Logger
	repeat *bus.RateLimited
}

// connID is the per-connection part of a nats-server log line, which would
// make every retry's line new.
var connID = regexp.MustCompile(`^[^ ]+ - lid:\d+ - `)

func (l leafLog) say(format string, v ...any) {
	l.repeat.Warn(l.log, "nats: "+connID.ReplaceAllString(fmt.Sprintf(format, v...), ""))
}

func (l leafLog) Noticef(string, ...any)         {}
func (l leafLog) Debugf(string, ...any)          {}
func (l leafLog) Tracef(string, ...any)          {}
func (l leafLog) Warnf(format string, v ...any)  { l.say(format, v...) }
func (l leafLog) Errorf(format string, v ...any) { l.say(format, v...) }
func (l leafLog) Fatalf(format string, v ...any) { l.say(format, v...) }
