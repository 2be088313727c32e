package gateway

import (
	"context"
	"fmt"

	"github.com/mcpbus/mcpbus/auth"
	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/mcpbus/mcpbus/registry"
	"github.com/mcpbus/mcpbus/router"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// startServices starts the services this process runs, each on a
// connection of its own as its own bus user (in-process: a user with just
// that service's subjects, bus/natsauth.go), and returns the process's
// metrics registry. The servers cache follows the bucket until runCtx ends.
func (g *Gateway) startServices(ctx, runCtx context.Context, o Options, conn func(string) (*nats.Conn, error)) (*prometheus.Registry, error) {
	var (
		rc      *nats.Conn
		kv, akv jetstream.KeyValue
		err     error
	)
	if o.runs("registry") {
		if rc, kv, akv, err = g.prepareRegistry(ctx, o, conn); err != nil {
			return nil, err
		}
	}
	if o.runs("auth") {
		if err := g.startAuth(o, conn); err != nil {
			return nil, err
		}
	}
	var cache *servercache.Cache
	if o.runs("registry") || o.runs("router") || o.runs("workers") || o.runs("ingress") {
		// The servers the other services of this process look up, from one
		// watch of the bucket (which the registry made, here or elsewhere).
		sc, err := conn("mcpbus-servers")
		if err != nil {
			return nil, err
		}
		if cache, err = servercache.Follow(runCtx, sc, o.Log); err != nil {
			return nil, err
		}
	}
	if o.runs("registry") {
		var fileAgents []string
		for _, a := range o.Config.Agents {
			fileAgents = append(fileAgents, a.Name)
		}
		if err := g.add(registry.Start(rc, cache, registry.Options{Version: version.Version, Log: o.Log, KV: kv, Env: o.Env,
			AllowStdioFromAPI: o.Config.AllowStdioFromAPI, Secrets: g.secrets, AgentsKV: akv, ConfigAgents: fileAgents,
			UserCredsKV: g.userCreds, PinsKV: g.pins, ToolPinning: o.Config.ToolPinning})); err != nil {
			return nil, fmt.Errorf("registry service: %w", err)
		}
	}
	reg, workerMetrics, err := g.metricsRegistry() // metrics.go
	if err != nil {
		return nil, err
	}
	if o.runs("router") {
		if err := g.startRouter(o, conn, cache); err != nil {
			return nil, err
		}
	}
	if o.runs("workers") {
		if err := g.startWorkers(ctx, runCtx, o, conn, cache, workerMetrics); err != nil {
			return nil, err
		}
	}
	if o.runs("llm") && len(o.Config.Models) > 0 {
		if err := g.startLLM(o, conn); err != nil { // llm.go
			return nil, err
		}
	}
	if o.runs("agents") {
		if err := g.startAgents(o, conn); err != nil { // agents.go
			return nil, err
		}
	}
	if o.runs("ingress") {
		if err := g.startIngress(o, conn, cache, reg); err != nil {
			return nil, err
		}
	}
	return reg, nil
}

// prepareRegistry connects the registry and makes the servers bucket (seeded
// from the config), the agents bucket, and the stream and bucket the workers
// use, which their bus users may not create (bus/natsauth.go). The registry
// service starts later, on rc, once the servers cache follows the bucket.
func (g *Gateway) prepareRegistry(ctx context.Context, o Options, conn func(string) (*nats.Conn, error)) (rc *nats.Conn, kv, akv jetstream.KeyValue, err error) {
	if rc, err = conn("mcpbus-registry"); err != nil {
		return nil, nil, nil, err
	}
	rjs, err := jetstream.New(rc)
	if err != nil {
		return nil, nil, nil, err
	}
	if kv, err = bus.ServersBucket(ctx, rjs, o.state()); err != nil {
		return nil, nil, nil, err
	}
	if err := registry.Seed(ctx, rjs, kv, o.Config.Servers, g.secrets, o.Log); err != nil {
		return nil, nil, nil, err
	}
	if akv, err = bus.AgentsBucket(ctx, rjs, o.state()); err != nil {
		return nil, nil, nil, err
	}
	EnsureUsageStream(ctx, rjs, o.state()) // usage.go
	if err := bus.EnsureOAuthTokenBucket(ctx, rjs, o.state()); err != nil {
		return nil, nil, nil, err
	}
	if err := bus.EnsureListsBucket(ctx, rjs, o.state()); err != nil {
		return nil, nil, nil, err
	}
	if err := bus.EnsureCatalogsBucket(ctx, rjs, o.state()); err != nil { // warm catalogs
		return nil, nil, nil, err
	}
	if g.userCreds, err = bus.EnsureUserCredentialsBucket(ctx, rjs, o.state()); err != nil {
		return nil, nil, nil, err
	}
	if err := bus.EnsureOAuthFlowsBucket(ctx, rjs, o.state()); err != nil {
		return nil, nil, nil, err
	}
	if g.pins, err = bus.EnsureToolPinsBucket(ctx, rjs, o.state()); err != nil { // tool_pinning
		return nil, nil, nil, err
	}
	if err := bus.EnsureTasksBucket(ctx, rjs, o.state()); err != nil { // tasks
		return nil, nil, nil, err
	}
	if err := g.ensureSigningKey(ctx, o, rjs); err != nil { // signing.go
		return nil, nil, nil, err
	}
	// Last: the buckets above must fit in the store before it reserves.
	EnsureAuditStream(ctx, rjs, o.Config.Audit, o.state()) // usage.go
	return rc, kv, akv, nil
}

// startAuth starts the auth service, with its buckets on its connection's
// JetStream.
func (g *Gateway) startAuth(o Options, conn func(string) (*nats.Conn, error)) error {
	ac, err := conn("mcpbus-auth")
	if err != nil {
		return err
	}
	ajs, err := jetstream.New(ac)
	if err != nil {
		return err
	}
	if err := g.add(auth.Start(ac, auth.Options{MasterKey: o.Config.MasterKey, Log: o.Log, Version: version.Version, JetStream: ajs, State: o.state(),
		RateLimitFailOpen: o.Config.RateLimitFailOpen})); err != nil {
		return fmt.Errorf("auth service: %w", err)
	}
	return nil
}

// startRouter starts the router service.
func (g *Gateway) startRouter(o Options, conn func(string) (*nats.Conn, error), cache *servercache.Cache) error {
	rc, err := conn("mcpbus-router")
	if err != nil {
		return err
	}
	if err := g.add(router.Start(rc, cache, router.Options{Version: version.Version, Log: o.Log, TracerProvider: o.TracerProvider,
		Separator: o.Config.ToolPrefixSeparator, Audit: o.Config.Audit.Enabled, AuditArguments: o.Config.Audit.Arguments})); err != nil {
		return fmt.Errorf("router service: %w", err)
	}
	return nil
}

// startWorkers runs a tool worker per server in the registry (or
// Options.WorkerServers), following the servers bucket: a record written or
// deleted through the registry gets (or loses) its worker without a restart.
func (g *Gateway) startWorkers(ctx, runCtx context.Context, o Options, conn func(string) (*nats.Conn, error), cache *servercache.Cache, m *toolworkers.Metrics) error {
	wc, err := conn("mcpbus-workers")
	if err != nil {
		return err
	}
	g.workers, err = StartWorkers(ctx, wc, toolworkers.ManagerOptions{
		Worker: toolworkers.Options{Log: o.Log, Env: o.Env, MaxInFlight: o.WorkerMaxInFlight,
			Servers: cache, AllowAPIStdio: o.Config.AllowStdioFromAPI, TracerProvider: o.TracerProvider,
			ConfigServers: o.Config.Servers, Secrets: g.secrets,
			Metrics: m, Signer: WorkerSigner(runCtx, wc, o.Config.SignedCalls, g.secrets, o.Log), // signing.go
			PublicURL: config.PublicURL(o.Env, o.Config.OAuth), Audit: o.Config.Audit,
			ToolPinning: o.Config.ToolPinning,
			Guards:      o.Config.Guards}, // guardrails of mcpbus's kinds (docs/GUARDS.md)
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

// startIngress builds the HTTP ingress; serve then listens.
func (g *Gateway) startIngress(o Options, conn func(string) (*nats.Conn, error), cache *servercache.Cache, reg *prometheus.Registry) error {
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
	oauthOpts, err := OAuthOptions(o.Config.OAuth, nil) // oauth.go
	if err != nil {
		return err
	}
	g.ing = ingress.New(ingress.Options{NC: ic, Log: o.Log, TracerProvider: o.TracerProvider, InternalRanges: ranges, Servers: cache,
		UseXFF: o.Config.UseXForwardedFor, TrustedProxies: o.Config.TrustedProxyRanges, XFFHops: o.Config.XFFNumTrustedHops,
		EnableMCPRegistry: o.Config.EnableMCPRegistry, Stateless: o.Config.StatelessProtocol, Version: version.Version, Metrics: reg,
		JetStream: ijs, State: o.state(), AllowedOrigins: o.Config.AllowedOrigins, ListenAddr: o.Listen, RouterOnly: o.RouterOnly,
		BodyReadTimeout: o.BodyReadTimeout, Routes: o.Routes, ExternalRoutes: o.Config.ExternalRoutes,
		OAuth: oauthOpts})
	// Connectors' messages reach this ingress (connector_bridge.go).
	startConnectorBridge(ic, cache, o.Log)
	return nil
}
