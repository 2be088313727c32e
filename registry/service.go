package registry

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/bus/version"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"
)

// Options configures the registry service.
type Options struct {
	Version string
	Log     *slog.Logger
	// KV is the servers bucket (bus.ServersBucket). Without it the registry
	// answers get and list from the cache (without revisions) and refuses
	// writes with ErrServiceUnavailable.
	KV jetstream.KeyValue
	// Env resolves os.environ/ references when a write is checked, so a record
	// naming a variable this process lacks is refused with the field named
	// (default os.LookupEnv). The record keeps the reference; workers resolve
	// it in their own process.
	Env config.LookupEnv
	// Secrets seals the credentials of the records it writes and opens
	// those it reads (bus/secrets.go). Without a key a write holding a
	// literal credential is refused (it would be stored in plain text).
	Secrets *bus.SecretKey
	// AllowStdioFromAPI is general_settings.mcp_allow_stdio_servers_from_api:
	// without it a write that would make the API define what a stdio server
	// runs is refused with ErrForbidden.
	AllowStdioFromAPI bool
	// AgentsKV is the agents bucket (bus.AgentsBucket): the agent admin
	// API's writes go there (agents.go). Without it they are refused with
	// ErrServiceUnavailable.
	AgentsKV jetstream.KeyValue
	// UserCredsKV is the per-user credential bucket
	// (bus.EnsureUserCredentialsBucket): the user credential API's writes
	// go there (usercreds.go). Without it they are refused with
	// ErrServiceUnavailable.
	UserCredsKV jetstream.KeyValue
	// PinsKV is the tool pins bucket (bus.EnsureToolPinsBucket): the pin
	// API reads and approves there (pins.go). Without it that API answers
	// ErrServiceUnavailable.
	PinsKV jetstream.KeyValue
	// ToolPinning is general_settings.mcp_tool_pinning, the pinning of a
	// server whose record sets none, as the pin API reports it.
	ToolPinning string
	// ConfigAgents are the names of the config file's agents, which the
	// API may not write.
	ConfigAgents []string
	// Timeout bounds one request's KV work (default 5s).
	Timeout time.Duration
	// SettleTimeout bounds how long a write waits for the cache to show it
	// (default 2s), so a caller that reads right after its write, on any
	// service sharing the cache, sees it.
	SettleTimeout time.Duration
}

// Registry answers the registry subjects.
type Registry struct {
	nc    *nats.Conn
	cache *servercache.Cache
	o     Options
	log   *slog.Logger
}

// Start registers the registry micro service: get and list, answered from
// the KV store (with revisions) or the cache, and create, update and delete.
// Every answer is redacted: credentials never leave the registry on the bus.
// The service does not check the caller: the ingress sends only the master
// key's requests.
func Start(nc *nats.Conn, cache *servercache.Cache, o Options) (micro.Service, error) {
	if o.Version == "" {
		o.Version = version.Version
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Env == nil {
		o.Env = os.LookupEnv
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.SettleTimeout <= 0 {
		o.SettleTimeout = 2 * time.Second
	}
	reg := &Registry{nc: nc, cache: cache, o: o, log: o.Log}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        bus.ServiceRegistry,
		Version:     o.Version,
		Description: "upstream MCP server registry",
	})
	if err != nil {
		return nil, err
	}
	endpoints := []struct {
		name, subject string
		handle        func(context.Context, []byte) (any, *bus.Error)
	}{
		{"get", bus.SubjectRegistryGet, reg.get},
		{"list", bus.SubjectRegistryList, reg.list},
		{"create", bus.SubjectRegistryCreate, reg.create},
		{"update", bus.SubjectRegistryUpdate, reg.update},
		{"delete", bus.SubjectRegistryDelete, reg.delete},
		{"drain", bus.SubjectRegistryDrain, reg.drain},            // ops.go
		{"canary", bus.SubjectRegistryCanary, reg.canary},         // ops.go
		{"agent_create", bus.SubjectAgentCreate, reg.agentCreate}, // agents.go
		{"agent_update", bus.SubjectAgentUpdate, reg.agentUpdate},
		{"agent_delete", bus.SubjectAgentDelete, reg.agentDelete},
	}
	for _, ep := range endpoints {
		// KV work runs on the endpoint's subscription goroutine, one request
		// per endpoint at a time: admin traffic, bounded by o.Timeout.
		err := svc.AddEndpoint(ep.name, micro.HandlerFunc(func(req micro.Request) {
			if req.Reply() == "" {
				// Every registry request asks for its answer; one without a
				// reply subject is JetStream's answer steered here
				// (bus/msgget.go).
				reg.log.Warn("registry: ignored a message that is no request (no reply subject)", "subject", req.Subject())
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
			defer cancel()
			out, e := ep.handle(ctx, req.Data())
			if e != nil {
				bus.RespondError(req, e)
				return
			}
			_ = req.RespondJSON(out)
		}), micro.WithEndpointSubject(ep.subject))
		if err != nil {
			_ = svc.Stop()
			return nil, err
		}
	}
	if err := reg.addUserCredEndpoints(svc); err != nil { // usercreds.go
		_ = svc.Stop()
		return nil, err
	}
	if err := reg.addPinEndpoints(svc); err != nil { // pins.go
		_ = svc.Stop()
		return nil, err
	}
	if err := svc.AddEndpoint("connector", micro.HandlerFunc(reg.connectorGet), micro.WithEndpointSubject(bus.ConnectorGet("*"))); err != nil {
		_ = svc.Stop()
		return nil, err
	}
	startConnectorNews(nc, cache, reg.log) // connector.go
	return svc, nil
}

func (reg *Registry) get(ctx context.Context, data []byte) (any, *bus.Error) {
	var in bus.ServerRef
	if err := json.Unmarshal(data, &in); err != nil || in.Name == "" {
		return nil, bus.Errorf(bus.ErrBadRequest, `registry get: body must be {"name": "<server>"}`)
	}
	if reg.o.KV == nil {
		s, ok := reg.cache.Get(in.Name)
		if !ok {
			return nil, notFound(in.Name)
		}
		return bus.NewServerRecord(s, 0), nil
	}
	s, rev, e := reg.read(ctx, in.Name)
	if e != nil {
		return nil, e
	}
	return bus.NewServerRecord(s, rev), nil
}

func (reg *Registry) list(ctx context.Context, _ []byte) (any, *bus.Error) {
	if reg.o.KV == nil {
		list := reg.cache.List()
		out := make([]bus.ServerRecord, len(list))
		for i, s := range list {
			out[i] = bus.NewServerRecord(s, 0)
		}
		return out, nil
	}
	all, e := reg.readAll(ctx)
	if e != nil {
		return nil, e
	}
	out := make([]bus.ServerRecord, len(all))
	for i, r := range all {
		out[i] = bus.NewServerRecord(r.spec, r.rev)
	}
	return out, nil
}

func notFound(name string) *bus.Error {
	return bus.Errorf(bus.ErrNotFound, "MCP server '%s' does not exist", bus.Shorten(name, 64))
}

// storeError turns a KV failure into a gateway error; the detail is logged.
func (reg *Registry) storeError(op, name string, err error) *bus.Error {
	reg.log.Error("registry: server store failed", "op", op, "server", name, "err", err)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) {
		return bus.Errorf(bus.ErrServiceUnavailable, "registry: the server store did not answer in time")
	}
	return bus.Errorf(bus.ErrInternal, "registry: %s server failed", op)
}

// read returns the stored record and its revision.
func (reg *Registry) read(ctx context.Context, name string) (bus.ServerSpec, uint64, *bus.Error) {
	if !bus.ValidToken(name) {
		// Not a name a server can have, and not a key to put in a subject.
		return bus.ServerSpec{}, 0, notFound(name)
	}
	e, err := reg.o.KV.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bus.ServerSpec{}, 0, notFound(name)
	} else if err != nil {
		return bus.ServerSpec{}, 0, reg.storeError("read", name, err)
	}
	var s bus.ServerSpec
	if err := json.Unmarshal(e.Value(), &s); err != nil {
		reg.log.Error("registry: unreadable server record", "server", name, "err", err)
		return bus.ServerSpec{}, 0, bus.Errorf(bus.ErrInternal, "registry: the stored record of MCP server '%s' is unreadable", name)
	}
	s, err = reg.o.Secrets.Open(s)
	if err != nil {
		reg.log.Error("registry: cannot open a server record's credentials", "server", name, "err", err)
		return bus.ServerSpec{}, 0, bus.Errorf(bus.ErrServiceUnavailable, "registry: %v", err)
	}
	return s, e.Revision(), nil
}

type stored struct {
	spec bus.ServerSpec
	rev  uint64
}

// readAll returns every stored record, sorted by name (the KV watch delivers
// keys in order of their last write, so they are sorted here).
func (reg *Registry) readAll(ctx context.Context) ([]stored, *bus.Error) {
	w, err := reg.o.KV.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, reg.storeError("list", "", err)
	}
	defer w.Stop()
	var out []stored
	for {
		select {
		case u := <-w.Updates():
			if u == nil {
				sortStored(out)
				return out, nil
			}
			var s bus.ServerSpec
			if err := json.Unmarshal(u.Value(), &s); err != nil {
				reg.log.Error("registry: skipping unreadable server record", "server", u.Key(), "err", err)
				continue
			}
			if opened, err := reg.o.Secrets.Open(s); err == nil {
				s = opened // else shown sealed, which Redacted hides all the same
			}
			out = append(out, stored{s, u.Revision()})
		case <-ctx.Done():
			return nil, reg.storeError("list", "", ctx.Err())
		}
	}
}
