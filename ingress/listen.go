package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"sync"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// subscriptions/listen (MCP 2026-07-28): what the GET stream of a session
// was, for a client with no session. The ingress holds it as it holds a GET
// stream: every ingress already hears every server's list_changed
// (notify.go), so a listen on any replica gets the changes of the servers
// its caller uses (those it named, or all it may see and use on /mcp). The
// first message is notifications/subscriptions/acknowledged with the agreed
// subset of what was asked; every notification after it carries the listen
// request's id as _meta's subscriptionId; the client ends it by closing the
// stream; when the ingress shuts down it ends it with a result.
//
// Agreed: the three list_changed kinds, as asked, and the
// resourceSubscriptions whose upstream subscription took
// (listen_resources.go).

// listenKinds maps the listen params' flags to the notifications they
// agree to.
var listenKinds = map[string]string{
	"toolsListChanged":     "notifications/tools/list_changed",
	"promptsListChanged":   "notifications/prompts/list_changed",
	"resourcesListChanged": "notifications/resources/list_changed",
}

// listenStream is one open subscriptions/listen.
type listenStream struct {
	id      json.RawMessage // the listen request's id: the subscription id
	sink    *sink
	caller  bus.Identity
	ipClass bus.IPClass
	servers []string
	kinds   map[string]bool // agreed notification methods
	end     context.CancelCauseFunc
	// lease holds the agreed resource subscriptions (uris) on the workers
	// (listen_resources.go); set once, under listenStreams.mu.
	lease string
	uris  map[string]bool
}

// listenAsk is what a subscriptions/listen asks for.
type listenAsk struct {
	kinds map[string]bool // notification methods
	uris  []string        // resourceSubscriptions, deduplicated
}

// listenStreams are this process's open listens.
type listenStreams struct {
	mu     sync.Mutex
	m      map[*listenStream]struct{}
	perKey map[string]int
	closed bool
}

// register adds ls unless its key holds bus.MaxSessionsPerKey listens here
// already (one key must not tie up an ingress), or the ingress is closing.
func (ls *listenStreams) register(st *listenStream) *bus.Error {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.closed {
		return bus.Errorf(bus.ErrServiceUnavailable, "this ingress is shutting down; listen again")
	}
	key := st.caller.KeyID
	if !st.caller.Admin && ls.perKey[key] >= bus.MaxSessionsPerKey {
		return bus.Errorf(bus.ErrRateLimited, "%s holds %d open subscriptions/listen streams on this ingress, the most one key may: close some", st.caller.Who(), ls.perKey[key])
	}
	if ls.m == nil {
		ls.m, ls.perKey = map[*listenStream]struct{}{}, map[string]int{}
	}
	ls.m[st] = struct{}{}
	ls.perKey[key]++
	return nil
}

func (ls *listenStreams) unregister(st *listenStream) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if _, ok := ls.m[st]; ok {
		delete(ls.m, st)
		if ls.perKey[st.caller.KeyID]--; ls.perKey[st.caller.KeyID] <= 0 {
			delete(ls.perKey, st.caller.KeyID)
		}
	}
}

// each calls f for every open listen, under the lock: f must not block.
func (ls *listenStreams) each(f func(*listenStream)) {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	for st := range ls.m {
		f(st)
	}
}

// closeAll ends every listen (with its result) and refuses new ones.
func (ls *listenStreams) closeAll() {
	ls.mu.Lock()
	ls.closed = true
	all := make([]*listenStream, 0, len(ls.m))
	for st := range ls.m {
		all = append(all, st)
	}
	ls.mu.Unlock()
	for _, st := range all {
		st.end(errClosing)
	}
}

// agreeListen reads subscriptions/listen params: which notifications the
// client wants, and which resources it subscribes to (at most
// bus.MaxSubscriptions URIs of at most bus.MaxURILen bytes, as a session).
// Params that are not an object, or members of the wrong type, are -32602.
func agreeListen(params json.RawMessage) (listenAsk, *bus.Error) {
	var p struct {
		Notifications map[string]json.RawMessage `json:"notifications"`
	}
	ask := listenAsk{kinds: map[string]bool{}}
	if err := json.Unmarshal(params, &p); err != nil {
		return ask, bus.Errorf(bus.ErrInvalidParams, "subscriptions/listen: params must be an object with notifications")
	}
	for flag, method := range listenKinds {
		var on bool
		if raw, ok := p.Notifications[flag]; ok {
			if json.Unmarshal(raw, &on) != nil {
				return ask, bus.Errorf(bus.ErrInvalidParams, "subscriptions/listen: notifications.%s must be true or false", flag)
			}
		}
		if on {
			ask.kinds[method] = true
		}
	}
	raw, ok := p.Notifications["resourceSubscriptions"]
	if !ok || string(raw) == "null" {
		return ask, nil
	}
	var uris []string
	if json.Unmarshal(raw, &uris) != nil {
		return ask, bus.Errorf(bus.ErrInvalidParams, "subscriptions/listen: notifications.resourceSubscriptions must be an array of URI strings")
	}
	seen := map[string]bool{}
	for i, uri := range uris {
		switch {
		case uri == "":
			return ask, bus.Errorf(bus.ErrInvalidParams, "subscriptions/listen: notifications.resourceSubscriptions[%d] is empty", i)
		case len(uri) > bus.MaxURILen:
			return ask, bus.Errorf(bus.ErrInvalidParams, "subscriptions/listen: notifications.resourceSubscriptions[%d] is longer than %d bytes", i, bus.MaxURILen)
		case seen[uri]:
			continue
		}
		seen[uri] = true
		ask.uris = append(ask.uris, uri)
	}
	if len(ask.uris) > bus.MaxSubscriptions {
		return ask, bus.Errorf(bus.ErrInvalidParams, "subscriptions/listen: notifications.resourceSubscriptions names %d resources, the most one listen may hold is %d", len(ask.uris), bus.MaxSubscriptions)
	}
	return ask, nil
}

// acknowledged is the first message of a listen: the agreed subset.
func acknowledged(id json.RawMessage, kinds, uris map[string]bool) []byte {
	agreed := map[string]any{}
	for flag, method := range listenKinds {
		if kinds[method] {
			agreed[flag] = true
		}
	}
	if len(uris) > 0 {
		list := make([]string, 0, len(uris))
		for uri := range uris {
			list = append(list, uri)
		}
		slices.Sort(list)
		agreed["resourceSubscriptions"] = list
	}
	params, _ := json.Marshal(map[string]any{
		"_meta":         map[string]json.RawMessage{bus.MetaSubscriptionID: id},
		"notifications": agreed,
	})
	return bus.Notification("notifications/subscriptions/acknowledged", params)
}

// tagged is notification method for the listen with id.
func tagged(id json.RawMessage, method string) []byte {
	params, _ := json.Marshal(map[string]any{"_meta": map[string]json.RawMessage{bus.MetaSubscriptionID: id}})
	return bus.Notification(method, params)
}

// listen serves a stateless-era subscriptions/listen (admitted: its key,
// _meta and headers are checked) until the client closes it, its key is
// revoked or the ingress shuts down.
func (g *Ingress) listen(w http.ResponseWriter, r *http.Request, req *request) {
	id := req.msg.ID
	if !req.sse {
		writeErrorFor(w, id, bus.Errorf(bus.ErrNotAcceptable, "subscriptions/listen answers with an event stream: Accept must include text/event-stream"), true)
		return
	}
	ask, e := agreeListen(req.msg.Params)
	if e != nil {
		writeErrorFor(w, id, e, true)
		return
	}
	ctx, end := context.WithCancelCause(r.Context())
	defer end(nil)
	st := &listenStream{id: id, sink: newSink(), caller: req.env.Caller, ipClass: req.env.IPClass,
		servers: req.env.Servers, kinds: ask.kinds, end: end}
	if e := g.listens.register(st); e != nil {
		writeErrorFor(w, id, e, true)
		return
	}
	defer g.listens.unregister(st)
	defer g.calls.add(st.caller.KeyID, requestID(r), end)()
	g.endOnShutdown(r)
	g.leaseResources(ctx, req, st, ask.uris) // listen_resources.go
	defer g.releaseLease(st)
	if len(st.uris) > 0 {
		go g.renewLease(ctx, req, st)
	}

	sse := startSSE(w, "") // the stateless era has no event ids
	if sse.message(acknowledged(id, ask.kinds, st.uris)) != nil {
		return
	}
	if g.pump(ctx, sse, st.sink, nil) && context.Cause(ctx) == errClosing {
		// A graceful end: the result, tagged like the rest.
		res, _ := json.Marshal(map[string]any{"resultType": "complete",
			"_meta": map[string]json.RawMessage{bus.MetaSubscriptionID: id}})
		_ = sse.message(bus.ResultResponse(id, res))
	}
}

// notifyListens passes a server's list_changed to the listens that agreed
// to its kind and whose caller uses the server.
func (g *Ingress) notifyListens(server, method string) {
	g.listens.each(func(st *listenStream) {
		if st.kinds[method] && g.callerUses(st.caller, st.ipClass, st.servers, server) {
			st.sink.push(&nats.Msg{Data: tagged(st.id, method)})
		}
	})
}
