package gateway

import (
	"context"
	"fmt"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// startWorkers runs a tool worker per server in the registry (or
// Options.WorkerServers), following the servers bucket: a record written or
// deleted through the registry gets (or loses) its worker without a restart.
func (g *Gateway) startWorkers(ctx context.Context, o Options, conn func(string) (*nats.Conn, error), cache *bus.ServerCache, m *toolworkers.Metrics) error {
	wc, err := conn("mcpbus-workers")
	if err != nil {
		return err
	}
	g.workers, err = StartWorkers(ctx, wc, toolworkers.ManagerOptions{
		Worker: toolworkers.Options{Log: o.Log, Env: o.Env, MaxInFlight: o.WorkerMaxInFlight,
			Servers: cache, AllowAPIStdio: o.Config.AllowStdioFromAPI, TracerProvider: o.TracerProvider,
			ConfigServers: o.Config.Servers, Secrets: g.secrets,
			Metrics: m},
		Only: o.WorkerServers,
	})
	return err
}

// StartWorkers starts the tool workers of a process on nc, as the gateway
// and `mcpbus worker` both do, with the shared OAuth2 token bucket on nc's
// JetStream.
func StartWorkers(ctx context.Context, nc *nats.Conn, o toolworkers.ManagerOptions) (*toolworkers.Manager, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	o.Worker.JetStream = js
	m, err := toolworkers.StartManager(ctx, nc, o)
	if err != nil {
		return nil, fmt.Errorf("tool workers: %w", err)
	}
	return m, nil
}

// startIngress builds the HTTP ingress; Start then listens.
func (g *Gateway) startIngress(o Options, conn func(string) (*nats.Conn, error), cache *bus.ServerCache, reg *prometheus.Registry) error {
	ic, err := conn("mcpbus-ingress")
	if err != nil {
		return err
	}
	ijs, err := jetstream.New(ic)
	if err != nil {
		return err
	}
	ranges := o.Config.InternalIPRanges
	if len(ranges) == 0 {
		ranges = config.DefaultInternalIPRanges()
	}
	g.ing = ingress.New(ingress.Options{NC: ic, Log: o.Log, TracerProvider: o.TracerProvider, InternalRanges: ranges, Servers: cache,
		UseXFF: o.Config.UseXForwardedFor, TrustedProxies: o.Config.TrustedProxyRanges, XFFHops: o.Config.XFFNumTrustedHops,
		EnableMCPRegistry: o.Config.EnableMCPRegistry, Version: version.Version, Metrics: reg,
		JetStream: ijs, State: o.state(), AllowedOrigins: o.Config.AllowedOrigins, ListenAddr: o.Listen, RouterOnly: o.RouterOnly,
		BodyReadTimeout: o.BodyReadTimeout})
	return nil
}
