package registry

import (
	"encoding/json"
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// A connector (`mcpbus connector`) serves from outside the cluster the
// servers whose record has transport connector; it completes the record,
// which holds the gateway's policy (visibility, access groups, tools), with
// how to reach the server. It reads no bucket (JetStream's API does not
// cross its leaf link), so the registry answers it: the record of one of
// its servers on bus.ConnectorGet, and every change of one on
// bus.ConnectorChanged. Only records with transport connector are told,
// and those hold no credential (config.Provision refuses one).

// connectorGet answers a connector's request for its server's record.
func (reg *Registry) connectorGet(req micro.Request) {
	name := bus.ServerOfConnectorGet(req.Subject())
	spec, ok := reg.cache.Get(name)
	if !ok || spec.Transport != config.TransportConnector {
		bus.RespondError(req, bus.Errorf(bus.ErrUnknownServer, "the gateway has no server %q with transport connector", bus.Shorten(name, 64)))
		return
	}
	_ = req.RespondJSON(spec)
}

// connectorNews tells connectors of their servers' records as the cache
// the registry shares with its process changes.
type connectorNews struct {
	nc    *nats.Conn
	log   *slog.Logger
	known map[string]bool // servers with transport connector; the cache calls apply one at a time
}

// startConnectorNews announces on nc every change of cache's connector
// servers.
func startConnectorNews(nc *nats.Conn, cache *servercache.Cache, log *slog.Logger) {
	n := &connectorNews{nc: nc, log: log, known: map[string]bool{}}
	cache.OnChange(n.apply)
}

func (n *connectorNews) apply(name string, spec bus.ServerSpec, present bool) {
	var body []byte
	if present && spec.Transport == config.TransportConnector {
		body, _ = json.Marshal(spec)
	}
	was := n.known[name]
	n.known[name] = body != nil
	if body == nil && !was {
		return // not a connector's, before or now
	}
	// An empty body: no record with transport connector any more.
	if err := n.nc.Publish(bus.ConnectorChanged(name), body); err != nil {
		n.log.Warn("registry: could not tell connectors of a record change", "server", name, "err", err)
	}
}
