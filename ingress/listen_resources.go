package ingress

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// A listen's resourceSubscriptions: what resources/subscribe was on a
// session. Each URI is subscribed on the workers as a session would
// subscribe it, under the listen's lease (bus/era_lease.go) in place of a
// session id and through the same routing (a URI of any server the caller
// may use on /mcp, the router finds whose), before the acknowledgement,
// which agrees to the URIs that took. The lease is renewed while the
// stream lives and released when it ends; resources/updated for an agreed
// URI reaches the stream tagged like the rest (notifyListenUpdate).

// leaseResources subscribes each URI of st's ask under a new lease and
// returns those that took; a URI the upstream refuses (or no server has) is
// left out of the acknowledgement, as the revision allows.
func (g *Ingress) leaseResources(ctx context.Context, req *request, st *listenStream, uris []string) {
	if len(uris) == 0 {
		return
	}
	lease, took := bus.NewListenLease(), map[string]bool{}
	for _, uri := range uris {
		reply, e := g.leaseOne(ctx, req, lease, uri)
		if e != nil {
			g.log.Debug("a subscriptions/listen resource subscription did not take", "uri", bus.Shorten(uri, 128), "err", e.Detail())
			continue
		}
		if !succeeded(reply) { // the upstream's refusal
			g.log.Debug("a subscriptions/listen resource subscription was refused", "uri", bus.Shorten(uri, 128), "reply", bus.Shorten(string(reply), 256))
			continue
		}
		took[uri] = true
	}
	g.listens.mu.Lock() // notify reads uris under it (each)
	st.lease, st.uris = lease, took
	g.listens.mu.Unlock()
}

// leaseOne sends resources/subscribe for uri under lease, with the
// listen's caller, class, selection and per-request headers, so it lands
// on the link the caller's calls use. It speaks the session era: the
// stateless one has no such method, and a worker in front of a server of
// both eras subscribes on the server's session.
func (g *Ingress) leaseOne(ctx context.Context, listen *request, lease, uri string) ([]byte, *bus.Error) {
	params, _ := json.Marshal(map[string]string{"uri": uri})
	msg := &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(`1`), Method: bus.MethodResourcesSubscribe, Params: params}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, bus.Errorf(bus.ErrInternal, "encoding a resource subscription: %v", err)
	}
	env := listen.env
	env.RequestID = listen.env.RequestID + "-sub"
	env.Session = lease
	env.ProtocolVersion = bus.LatestProtocolVersion
	env.ClientCapabilities, env.LogLevel, env.ParamHeaders, env.Stream = nil, "", nil, ""
	env.Deadline = time.Time{}
	return g.route(ctx, &request{msg: msg, body: body, env: env})
}

// renewLease keeps st's lease alive on the workers until ctx ends, sending
// its subscriptions again every bus.ListenLeaseRenew: a worker that holds
// them renews the lease, one that lost them (restarted) subscribes anew.
func (g *Ingress) renewLease(ctx context.Context, listen *request, st *listenStream) {
	t := time.NewTicker(bus.ListenLeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for uri := range st.uris {
			if _, e := g.leaseOne(ctx, listen, st.lease, uri); e != nil && ctx.Err() == nil {
				g.log.Info("renewing a subscriptions/listen resource subscription failed; retrying at the next renewal", "uri", bus.Shorten(uri, 128), "err", e.Detail())
			}
		}
	}
}

// releaseLease tells every worker st's lease ended, as a session's end is
// told: the last subscriber of a URI unsubscribes it upstream.
func (g *Ingress) releaseLease(st *listenStream) {
	if st.lease == "" {
		return
	}
	if err := g.nc.Publish(bus.SubjectSessionClosed, []byte(st.lease)); err != nil {
		g.log.Info("could not release a subscriptions/listen lease; the workers drop it when it is not renewed", "err", err)
	}
}

// notifyListenUpdate passes a server's resources/updated to the listens
// that agreed to its URI and whose caller uses the server, tagged.
func (g *Ingress) notifyListenUpdate(server, uri string) {
	g.listens.each(func(st *listenStream) {
		if st.uris[uri] && g.callerUses(st.caller, st.ipClass, st.servers, server) {
			params, _ := json.Marshal(map[string]any{"uri": uri,
				"_meta": map[string]json.RawMessage{bus.MetaSubscriptionID: st.id}})
			st.sink.push(&nats.Msg{Data: bus.Notification("notifications/resources/updated", params)})
		}
	})
}
