package ingress

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/ingress/ui"
	"github.com/nats-io/nats.go"
)

// The admin UI (route family ui): the embedded pages (ingress/ui), sign-in
// (ui_session.go), and the live feed that tells open pages what changed.

// uiCSP is the pages' Content-Security-Policy: scripts, styles, images and
// requests from the gateway itself only; no inline script or style, no
// frames, no plugins, no base or form targets elsewhere.
const uiCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// uiRoutes registers /ui, its assets and its API, each answer with the
// headers that keep the pages to themselves.
func (g *Ingress) uiRoutes(mux *http.ServeMux) {
	assets := ui.Handler("/ui")
	mux.Handle("/ui", uiHeaders(assets))
	mux.Handle("/ui/", uiHeaders(assets))
	mux.Handle("/ui/api/session", uiHeaders(http.HandlerFunc(g.serveUISession)))
	mux.Handle("GET /ui/api/sign-in-methods", uiHeaders(http.HandlerFunc(g.uiSignInMethods))) // ui_oauth.go
	mux.Handle("GET "+uiLoginPath, uiHeaders(http.HandlerFunc(g.uiOAuthLogin)))
	mux.Handle("GET "+uiCallbackPath, uiHeaders(http.HandlerFunc(g.uiOAuthCallback)))
	mux.Handle("/ui/api/events", uiHeaders(http.HandlerFunc(g.serveUIEvents)))
	mux.Handle("/ui/api/usage", uiHeaders(http.HandlerFunc(g.serveUIUsage)))          // ui_usage.go
	mux.Handle("/ui/api/usage/tail", uiHeaders(http.HandlerFunc(g.serveUIUsageTail))) // ui_usage.go
	mux.Handle("/ui/api/cluster", uiHeaders(http.HandlerFunc(g.serveUICluster)))      // ui_cluster.go
	mux.Handle("/ui/api/network", uiHeaders(http.HandlerFunc(g.serveUINetwork)))      // ui_cluster.go
}

func uiHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", uiCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// uiFeed fans the changes open pages care about out to their event
// streams: "servers" (the servers bucket, as the registry cache follows
// it), "agents" (the agents bucket), "auth" (keys, teams or
// organizations changed: auth announces every write) and "pins" (a tool
// pin changed: bus.PinEventSubject). Events carry no names, so a page learns only that it
// should ask the API again, which answers what its caller may see.
type uiFeed struct {
	mu   sync.Mutex
	subs map[chan string]struct{}
	sub  *nats.Subscription
	// pinSub follows the tool pins' events ("pins").
	pinSub *nats.Subscription
	// stop ends the agents bucket's follower (started in the background:
	// the registry may make the bucket after this ingress starts).
	stop context.CancelFunc
}

func (g *Ingress) startUIFeed() {
	ctx, stop := context.WithCancel(context.Background())
	f := &uiFeed{subs: map[chan string]struct{}{}, stop: stop}
	g.uiFeed = f
	g.o.Servers.OnChange(func(string, bus.ServerSpec, bool) { f.send("servers") })
	go func() {
		fl, err := bus.FollowKV(ctx, g.nc, bus.BucketAgents, nil, func(bus.KVEntry) { f.send("agents") })
		if err != nil {
			if ctx.Err() == nil {
				g.log.Warn("the UI's live pages will not follow the agents", "err", err)
			}
			return
		}
		<-ctx.Done()
		fl.Stop()
	}()
	sub, err := g.nc.Subscribe(bus.SubjectAuthChanged, func(*nats.Msg) { f.send("auth") })
	if err != nil {
		g.log.Error("cannot follow key changes for the UI's live pages", "err", err)
		return
	}
	f.sub = sub
	// Tool pins pinned, gone pending, approved or rejected (bus/pins.go):
	// the servers pages show them.
	psub, err := g.nc.Subscribe(bus.SubjectPinEventsAll, func(*nats.Msg) { f.send("pins") })
	if err != nil {
		g.log.Error("cannot follow tool pin changes for the UI's live pages", "err", err)
		return
	}
	f.pinSub = psub
}

// send tells every stream, dropping the event for a stream that is behind
// (it already has one to read: the page refetches once either way).
func (f *uiFeed) send(event string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- event:
		default:
		}
	}
}

func (f *uiFeed) add() chan string {
	ch := make(chan string, 8)
	f.mu.Lock()
	f.subs[ch] = struct{}{}
	f.mu.Unlock()
	return ch
}

func (f *uiFeed) remove(ch chan string) {
	f.mu.Lock()
	delete(f.subs, ch)
	f.mu.Unlock()
}

func (f *uiFeed) close() {
	if f == nil {
		return
	}
	f.stop()
	if f.sub != nil {
		_ = f.sub.Unsubscribe()
	}
	if f.pinSub != nil {
		_ = f.pinSub.Unsubscribe()
	}
}

// serveUIEvents is the live feed of a signed-in page (an EventSource):
// "event: servers", "agents", "auth" or "pins" when they change, a comment now and
// then to keep proxies from closing it, and the end when the key stops
// being valid.
func (g *Ingress) serveUIEvents(w http.ResponseWriter, r *http.Request) {
	if !getOnly(w, r) {
		return
	}
	_, rec, ok := g.uiSignedIn(w, r)
	if !ok {
		return
	}
	fl, canFlush := w.(http.Flusher)
	if !canFlush || g.uiFeed == nil {
		writeRESTError(w, bus.Errorf(bus.ErrInternal, "this server cannot stream events"))
		return
	}
	// Following before the answer starts: a page that fetches once its
	// feed is open misses no change made in between.
	ch := g.uiFeed.add()
	defer g.uiFeed.remove(ch)
	startUIStream(w, fl, "mcpbus live")
	tick := time.NewTicker(g.keepalive)
	defer tick.Stop()
	end := time.NewTimer(time.Until(rec.Expires))
	defer end.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-end.C:
			return
		case ev := <-ch:
			if _, e := g.verifySession(r.Context(), rec); e != nil {
				_, _ = fmt.Fprintf(w, "event: signed-out\ndata: {}\n\n")
				fl.Flush()
				return
			}
			_, _ = fmt.Fprintf(w, "event: %s\ndata: {}\n\n", ev)
			fl.Flush()
		case <-tick.C:
			_, _ = fmt.Fprint(w, ": keepalive\n\n")
			fl.Flush()
		}
	}
}

// startUIStream answers 200 with an event stream and a first comment.
func startUIStream(w http.ResponseWriter, fl http.Flusher, comment string) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprintf(w, ": %s\n\n", comment)
	fl.Flush()
}

// getOnly refuses any method but GET (405).
func getOnly(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", "GET")
	writeRESTError(w, bus.Errorf(bus.ErrMethodNotAllowed, "method %s not allowed on %s: use GET", r.Method, r.URL.Path))
	return false
}

// uiGet admits a GET of the UI's API and verifies its caller (a key
// header, else the session cookie).
func (g *Ingress) uiGet(w http.ResponseWriter, r *http.Request) (bus.Identity, bool) {
	if !getOnly(w, r) {
		return bus.Identity{}, false
	}
	id, e := g.verify(r)
	if e != nil {
		writeRESTError(w, e)
		return bus.Identity{}, false
	}
	return id, true
}

// uiSignedIn reads r's session (once) and verifies its key: 401 when there
// is no live session or its key is no longer valid.
func (g *Ingress) uiSignedIn(w http.ResponseWriter, r *http.Request) (bus.Identity, bus.UISession, bool) {
	_, rec, ok := g.uiSessionOf(r)
	if !ok {
		writeRESTError(w, bus.Errorf(bus.ErrUnauthorized, "unauthorized: not signed in"))
		return bus.Identity{}, bus.UISession{}, false
	}
	id, e := g.verifySession(r.Context(), rec)
	if e != nil {
		writeRESTError(w, bus.Errorf(bus.ErrUnauthorized, "unauthorized: not signed in"))
		return bus.Identity{}, bus.UISession{}, false
	}
	return id, rec, true
}
