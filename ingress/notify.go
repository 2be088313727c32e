package ingress

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Server notifications that concern every session using a server (catalog
// changes, resource updates) reach this process once, on one subscription
// to bus.SubjectNotifyAll, and are fanned out here to the open session
// streams they concern:
//
//   - notifications/{tools,prompts,resources}/list_changed: to sessions
//     whose servers include the server (a session opened without a selection
//     uses every server its caller may see: visible to its IP class, and
//     permitted to its key);
//   - notifications/resources/updated: to those of them whose record
//     subscribed to the URI (resources/subscribe, on any replica);
//   - list_changed also to the stateless era's subscriptions/listen
//     streams that agreed to its kind (listen.go), and resources/updated
//     to those that agreed to its URI (listen_resources.go).
//
// Other notifications on the subject are not for clients.

func (g *Ingress) startNotify() {
	sub, err := g.nc.Subscribe(bus.SubjectNotifyAll, g.onNotify)
	if err != nil {
		g.log.Error("cannot follow server notifications; sessions will not hear of catalog changes", "err", err)
		return
	}
	g.notifySub = sub
}

func (g *Ingress) onNotify(m *nats.Msg) { g.notify(m, 0) }

// unknownServerRetries are the waits before fanning out again a catalog
// change of a server this process's registry cache does not know yet: a
// server just added announces itself when its worker starts, which may be
// before the record reaches this cache.
var unknownServerRetries = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second}

func (g *Ingress) notify(m *nats.Msg, attempt int) {
	server := bus.ServerOfNotify(m.Subject)
	var n struct {
		Method string `json:"method"`
		Params struct {
			URI string `json:"uri"`
		} `json:"params"`
	}
	if json.Unmarshal(m.Data, &n) != nil {
		return
	}
	updated := n.Method == "notifications/resources/updated"
	switch {
	case updated:
		if n.Params.URI == "" {
			return
		}
	case n.Method == "notifications/tools/list_changed", n.Method == "notifications/prompts/list_changed",
		n.Method == "notifications/resources/list_changed":
	default:
		return
	}
	if !updated && g.o.Servers != nil {
		if _, known := g.o.Servers.Get(server); !known {
			if attempt < len(unknownServerRetries) {
				time.AfterFunc(unknownServerRetries[attempt], func() { g.notify(m, attempt+1) })
			}
			return
		}
	}
	if updated {
		g.notifyListenUpdate(server, n.Params.URI) // listen_resources.go
	} else {
		g.notifyListens(server, n.Method) // listen.go
	}
	out := &nats.Msg{Subject: m.Subject, Data: m.Data} // no reply subject: nothing to acknowledge
	g.events.each(func(st *eventStream) {
		if !g.uses(st, server) {
			return
		}
		if updated {
			sess := g.sessions.cached(st.sid)
			if sess == nil || !sess.subscribed(n.Params.URI) {
				return
			}
		}
		st.sink.push(out)
	})
}

// uses reports whether the session of st uses server: it selected it (or
// selected none), and its caller may see and use it.
func (g *Ingress) uses(st *eventStream, server string) bool {
	return g.callerUses(st.caller, st.ipClass, st.servers, server)
}

// callerUses reports whether a caller of class who selected servers (none:
// all) uses server: it selected it, and may see and use it.
func (g *Ingress) callerUses(caller bus.Identity, class bus.IPClass, servers []string, server string) bool {
	if len(servers) > 0 && !slices.Contains(servers, server) {
		return false
	}
	if g.o.Servers == nil {
		return false
	}
	spec, ok := g.o.Servers.Get(server)
	return ok && bus.Visible(spec, class) && caller.Permissions.AllowsServer(spec)
}
