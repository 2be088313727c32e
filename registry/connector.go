package registry

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
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

// connectorNews tells connectors of their servers' records as the bucket
// changes.
type connectorNews struct {
	nc  *nats.Conn
	log *slog.Logger

	mu    sync.Mutex
	known map[string]bool // servers with transport connector
}

// startConnectorNews follows the servers bucket on nc, in the background
// (a bucket not made yet is waited for), until the returned stop is called.
func startConnectorNews(nc *nats.Conn, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	n := &connectorNews{nc: nc, log: log, known: map[string]bool{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err := bus.FollowKV(ctx, nc, bus.BucketServers, nil, n.apply)
		if err != nil {
			if ctx.Err() == nil {
				log.Error("registry: connectors will not hear of their servers' record changes", "err", err)
			}
			return
		}
		<-ctx.Done()
		f.Stop()
	}()
	return func() { cancel(); <-done }
}

func (n *connectorNews) apply(e bus.KVEntry) {
	var body []byte
	if !e.Deleted {
		spec, err := bus.DecodeServerRecord(e.Key, e.Value)
		if err == nil && spec.Transport == config.TransportConnector {
			body, _ = json.Marshal(spec)
		}
	}
	n.mu.Lock()
	was := n.known[e.Key]
	n.known[e.Key] = body != nil
	n.mu.Unlock()
	if body == nil && !was {
		return // not a connector's, before or now
	}
	// An empty body: no record with transport connector any more.
	if err := n.nc.Publish(bus.ConnectorChanged(e.Key), body); err != nil {
		n.log.Warn("registry: could not tell connectors of a record change", "server", e.Key, "err", err)
	}
}

// service is the registry's micro service, which also stops its
// connector news when it stops.
type service struct {
	micro.Service
	stopNews func()
}

func (s service) Stop() error {
	s.stopNews()
	return s.Service.Stop()
}
