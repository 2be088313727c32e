package gateway

import (
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats.go"
)

// A connector (`mcpbus connector`) is a NATS leaf node, and a leaf node
// sends a message on only where the hub has told it there is interest. The
// hub tells a leaf of a subscription only if the leaf's user may publish
// to it, and for the wildcards the gateway subscribes with
// (mcpbus.v1.usage.>, mcpbus.v1.stream.<ingress>.>,
// mcpbus.v1.session.events.>) nats-server's check does not see that a
// connector's narrower permissions (mcpbus.v1.usage.*.<server>.*, ...)
// fall inside them: its reverse match does not descend past a '*' under a
// '>' (nats-server v2.15.2, sublist.go getAllNodes). So the connector would
// think nobody listens, and its servers' usage events, progress and
// session messages would stop at its edge.
//
// The bridge fixes that from the gateway's side: for every server the
// registry says a connector serves, the ingress holds subscriptions whose
// subjects are the connector's own permission patterns, which nats-server
// matches exactly. They carry interest only; what arrives on them is
// dropped, and the gateway's usual subscriptions handle the message.

// connectorPatterns are the subjects a connector for server publishes
// that the gateway consumes through wildcards (bus.RolePermissions of
// bus.RoleConnector).
func connectorPatterns(server string) []string {
	return []string{
		bus.UsageFilter("", server, ""),
		bus.ClientSubject(bus.StreamSubject("*", "*"), server),
		bus.ClientSubject(bus.SessionSubject("*"), server),
	}
}

// connectorBridge keeps the interest subscriptions of the connector
// servers among the servers the process's cache follows.
type connectorBridge struct {
	nc   *nats.Conn
	log  *slog.Logger
	subs map[string][]*nats.Subscription // the cache calls apply one at a time (OnChange)
}

// startConnectorBridge bridges on nc the connector servers of cache, as it
// changes.
func startConnectorBridge(nc *nats.Conn, cache *servercache.Cache, log *slog.Logger) {
	b := &connectorBridge{nc: nc, log: log, subs: map[string][]*nats.Subscription{}}
	cache.OnChange(b.apply)
}

func (b *connectorBridge) apply(name string, spec bus.ServerSpec, present bool) {
	connector := present && spec.Transport == config.TransportConnector
	have := b.subs[name] != nil
	switch {
	case connector && !have:
		var subs []*nats.Subscription
		for _, p := range connectorPatterns(name) {
			s, err := b.nc.Subscribe(p, func(*nats.Msg) {})
			if err != nil {
				b.log.Error("connector bridge: cannot subscribe; the connector's usage and streamed messages will not arrive", "server", name, "subject", p, "err", err)
				continue
			}
			subs = append(subs, s)
		}
		b.subs[name] = subs
	case !connector && have:
		for _, s := range b.subs[name] {
			_ = s.Unsubscribe()
		}
		delete(b.subs, name)
	}
}
