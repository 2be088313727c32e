package toolworkers

// A link is one upstream client (so one upstream session) together with what
// the worker keeps about it: its catalog cache, its resource subscriptions and
// log level, and whom it serves. A worker replica has
//
//   - the shared link: every caller without per-request credentials or
//     private capabilities (the hot path);
//   - one link per distinct per-request credential set (clients.go), shared
//     by the callers sending that set;
//   - private links (private.go): one per downstream session whose client
//     declared sampling, elicitation or roots, opened with exactly that
//     client's capabilities, since the upstream may send it requests outside
//     any call.
//
// A link is the upstream.Events of its client: what the upstream sends outside
// calls (the GET stream) and session-wide notifications land here.

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/toolworkers/upstream"
)

type link struct {
	w     *Worker
	up    upstream.Client
	cache catalog

	// The downstream session a private link serves ("" for shared and
	// credential links), its key and its client's capabilities.
	sid, keyID string
	caps       json.RawMessage

	ctx    context.Context // ends with close; bounds GET-stream requests
	cancel context.CancelFunc
	used   atomic.Int64 // unix nanoseconds of the last call (private links)
	lost   atomic.Int64 // upstream sessions that ended under this link (SessionLost)

	mu sync.Mutex
	// level: on a private link, the session's logging/setLevel level; on a
	// shared one, the level mcpbus set upstream ("" none).
	level string
	// subs (shared and credential links): resource URI -> sessions subscribed.
	subs map[string]map[string]bool
	// subMu serializes the upstream subscription changes of this link.
	subMu sync.Mutex
}

var _ upstream.Events = (*link)(nil)

// newLink makes a link whose client sends header upstream. A private link
// (sid set) declares caps at initialize; others declare none.
func (w *Worker) newLink(header http.Header, sid, keyID string, caps json.RawMessage) *link {
	l := &link{w: w, sid: sid, keyID: keyID, caps: caps}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.used.Store(time.Now().UnixNano())
	l.up = w.scrubbedUpstream(header, caps, l) // scrub.go
	return l
}

func (l *link) private() bool { return l.sid != "" }

// close ends the link's upstream session.
func (l *link) close() {
	l.cancel()
	l.up.Close()
}

func (l *link) SessionOpened() {
	l.cache.reset()
	l.mu.Lock()
	restore := len(l.subs) > 0 || l.level != ""
	l.mu.Unlock()
	if restore {
		go l.restore()
	}
}

// restore re-applies, on a new upstream session, the resource subscriptions
// and log level that were set on the one the upstream forgot.
func (l *link) restore() {
	ctx, cancel := context.WithTimeout(l.ctx, l.w.up.Timeout)
	defer cancel()
	l.mu.Lock()
	level := l.level
	uris := make([]string, 0, len(l.subs))
	for uri := range l.subs {
		uris = append(uris, uri)
	}
	l.mu.Unlock()
	if level != "" {
		p, _ := json.Marshal(map[string]string{"level": level})
		if _, err := l.up.Call(ctx, bus.MethodLoggingSetLevel, p, nil); err != nil {
			l.w.log.Info("re-applying the log level on a new upstream session failed", "err", bus.AsError(err).Detail())
		}
	}
	for _, uri := range uris {
		p, _ := json.Marshal(map[string]string{"uri": uri})
		if _, err := l.up.Call(ctx, bus.MethodResourcesSubscribe, p, nil); err != nil {
			l.w.log.Info("re-subscribing a resource on a new upstream session failed", "err", bus.AsError(err).Detail())
		}
	}
}

func (l *link) SessionLost() {
	l.lost.Add(1)
	l.cache.reset()
}

func (l *link) SessionNotification(method string, params json.RawMessage) {
	w := l.w
	if stale, ok := listChangedMethods[method]; ok {
		// The server's list changed, not this session's: drop it from every
		// session of this replica before anyone is told (a client told by
		// one session's notice may list again on another, which may not have
		// heard yet).
		w.eachLink(func(l *link) { l.cache.invalidate(stale...) })
		if l == w.shared {
			w.purgeShared(stale)    // shared_lists.go: the other replicas' copy too
			w.forgetCatalogs(stale) // warm_catalogs.go: and the next start's
		}
		w.changes.publish(method, params)
		return
	}
	switch method {
	case "notifications/resources/updated":
		if l.private() {
			w.publish(bus.SessionSubject(l.sid), bus.Notification(method, params))
		} else {
			w.notify(bus.Notification(method, params))
		}
	case "notifications/message":
		if !l.private() {
			w.log.Debug("dropped a log message the upstream sent outside any call on a shared session")
			return
		}
		l.mu.Lock()
		level := l.level
		l.mu.Unlock()
		if levelAllows(level, messageLevel(params)) {
			w.publish(bus.SessionSubject(l.sid), bus.Notification(method, params))
		}
	default:
		w.log.Debug("dropped an upstream notification outside any call", "method", method)
	}
}

func (l *link) ServerRequest(ctx context.Context, m *bus.Message) []byte {
	if !l.private() {
		return upstream.Refusal(m.ID, upstream.CodeMethodNotFound, "the client cannot receive "+m.Method+
			": it came outside any request on the upstream session mcpbus shares between clients, so no single client can answer it")
	}
	ctx, cancel := context.WithTimeout(ctx, l.w.s2cTimeout())
	defer cancel()
	stop := context.AfterFunc(l.ctx, cancel)
	defer stop()
	return l.w.relayServerRequest(ctx, s2cTarget{subject: bus.SessionSubject(l.sid), session: l.sid, keyID: l.keyID, caps: l.caps}, m)
}

// eachLink calls f for every link of the worker.
func (w *Worker) eachLink(f func(*link)) {
	f(w.shared)
	w.creds.each(f)
	w.private.each(f)
}

// notify publishes a notification of the server's on its notify subject
// (every ingress, router and replica hears it), best effort.
func (w *Worker) notify(data []byte) {
	if err := w.nc.Publish(bus.NotifySubject(w.up.Name), data); err != nil {
		w.log.Debug("publish failed", "err", err)
	}
}

// publish sends a notification for a client (a session's stream) on the
// bus, under this worker's server (toClient), best effort.
func (w *Worker) publish(subject string, data []byte) {
	if err := w.nc.PublishMsg(w.toClient(subject, data)); err != nil {
		w.log.Debug("publish failed", "err", err)
	}
}

// changeNotices publishes list_changed notifications to the server's notify
// subject, at most twice per window per method: every link of a replica (the
// shared one, each private one) hears the same change from the upstream.
type changeNotices struct {
	w      *Worker
	window time.Duration

	mu      sync.Mutex
	last    map[string]time.Time
	pending map[string]bool
	timers  map[*time.Timer]struct{}
	stopped bool
}

func (c *changeNotices) publish(method string, params json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return
	}
	if c.last == nil {
		c.last, c.pending, c.timers = map[string]time.Time{}, map[string]bool{}, map[*time.Timer]struct{}{}
	}
	since := time.Since(c.last[method])
	if since >= c.window {
		c.last[method] = time.Now()
		c.w.notify(bus.Notification(method, params))
		return
	}
	if c.pending[method] {
		return
	}
	// A change inside the window: say it once more at its end, so a client
	// that re-listed after the first notice also sees this one.
	c.pending[method] = true
	var t *time.Timer
	t = time.AfterFunc(c.window-since, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.timers, t)
		c.pending[method] = false
		if c.stopped {
			return
		}
		c.last[method] = time.Now()
		c.w.notify(bus.Notification(method, params))
	})
	c.timers[t] = struct{}{}
}

func (c *changeNotices) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	for t := range c.timers {
		t.Stop()
	}
}

// setLevel handles logging/setLevel on l. A private link forwards it (the
// upstream session is the client's alone) and remembers the level for what
// its GET stream carries. A shared link never lets one client set the level
// for others: it answers {} and each call's log messages are filtered by its
// own session's level (Envelope.LogLevel). So that the messages exist to be
// filtered, the shared upstream session is set once to the most verbose level
// any client asked for (many servers, the go-sdk's among them, send no log
// messages until a level is set).
//
// info returns the upstream's initialize result: a shared session whose
// server has no logging capability is not asked at all.
func (l *link) setLevel(params json.RawMessage, call func() (*bus.Message, error), info func() json.RawMessage) (*bus.Message, error) {
	var p struct {
		Level string `json:"level"`
	}
	_ = json.Unmarshal(params, &p)
	if _, ok := levelRank(p.Level); !ok {
		return nil, bus.Errorf(bus.ErrInvalidParams, "logging/setLevel: level %q is not one of debug, info, notice, warning, error, critical, alert, emergency", p.Level)
	}
	if l.private() {
		resp, err := call()
		if err == nil && len(resp.Error) == 0 {
			l.mu.Lock()
			l.level = p.Level
			l.mu.Unlock()
		}
		return resp, err
	}
	l.subMu.Lock() // one upstream change at a time
	defer l.subMu.Unlock()
	l.mu.Lock()
	lower := moreVerbose(p.Level, l.level)
	l.mu.Unlock()
	if !lower || !declares(info(), "logging") {
		return emptyResult(), nil // nothing to change upstream, or nothing to change it with
	}
	resp, err := call()
	if err != nil || len(resp.Error) > 0 {
		return resp, err
	}
	l.mu.Lock()
	l.level = p.Level
	l.mu.Unlock()
	return emptyResult(), nil
}

// syncLevel brings the upstream session's level in line with the level the
// caller's session set last (Envelope.LogLevel), which may have reached
// another replica: each replica has upstream sessions of its own. A private
// session takes the level; a shared one is only ever made more verbose (see
// setLevel), and only if its server has logging.
func (l *link) syncLevel(ctx context.Context, level string) {
	if _, ok := levelRank(level); !ok {
		return
	}
	l.mu.Lock()
	needed := l.level != level
	if !l.private() {
		needed = moreVerbose(level, l.level)
	}
	l.mu.Unlock()
	if !needed {
		return
	}
	if !l.private() {
		if info, err := l.up.Info(ctx); err != nil || !declares(info, "logging") {
			return
		}
		l.subMu.Lock()
		defer l.subMu.Unlock()
		l.mu.Lock()
		needed = moreVerbose(level, l.level)
		l.mu.Unlock()
		if !needed {
			return
		}
	}
	p, _ := json.Marshal(map[string]string{"level": level})
	resp, err := l.up.Call(ctx, bus.MethodLoggingSetLevel, p, nil)
	if err != nil || len(resp.Error) > 0 {
		return // the call goes on; the upstream's level stays
	}
	l.mu.Lock()
	l.level = level
	l.mu.Unlock()
}

// subscription handles resources/subscribe and resources/unsubscribe. A
// private link forwards them (and remembers them, to subscribe again on a new
// upstream session). A shared link subscribes upstream for the first
// session that subscribes to a URI and unsubscribes after the last one leaves
// (per session or listen lease, leases.go: subscribing twice counts once);
// the others are answered {}.
func (l *link) subscription(method, sid string, params json.RawMessage, call func() (*bus.Message, error)) (*bus.Message, error) {
	var p struct {
		URI string `json:"uri"`
	}
	if json.Unmarshal(params, &p) != nil || p.URI == "" {
		return call() // let the upstream say what is wrong with it
	}
	l.subMu.Lock()
	defer l.subMu.Unlock()
	if l.private() { // forwarded; kept only to re-subscribe on a new session
		resp, err := call()
		if err == nil && len(resp.Error) == 0 {
			l.mu.Lock()
			if method == bus.MethodResourcesSubscribe {
				if l.subs == nil {
					l.subs = map[string]map[string]bool{}
				}
				l.subs[p.URI] = map[string]bool{sid: true}
			} else {
				delete(l.subs, p.URI)
			}
			l.mu.Unlock()
		}
		return resp, err
	}
	l.mu.Lock()
	set := l.subs[p.URI]
	l.mu.Unlock()
	if method == bus.MethodResourcesSubscribe {
		if len(set) > 0 {
			l.mu.Lock()
			set[sid] = true
			l.mu.Unlock()
			l.w.leased(sid) // leases.go: a listen's renewal lands here
			return emptyResult(), nil
		}
		resp, err := call()
		if err == nil && len(resp.Error) == 0 {
			l.mu.Lock()
			if l.subs == nil {
				l.subs = map[string]map[string]bool{}
			}
			l.subs[p.URI] = map[string]bool{sid: true}
			l.mu.Unlock()
			l.w.leased(sid)
		}
		return resp, err
	}
	if !set[sid] {
		return emptyResult(), nil // not subscribed: nothing to undo
	}
	if len(set) > 1 {
		l.mu.Lock()
		delete(set, sid)
		l.mu.Unlock()
		return emptyResult(), nil
	}
	resp, err := call()
	if err == nil && len(resp.Error) == 0 {
		l.mu.Lock()
		delete(l.subs, p.URI)
		l.mu.Unlock()
	}
	return resp, err
}

// dropSession removes an ended downstream session's subscriptions from a
// shared link, unsubscribing upstream where it was the last subscriber.
func (l *link) dropSession(sid string) {
	var last []string
	l.subMu.Lock()
	defer l.subMu.Unlock()
	l.mu.Lock()
	for uri, set := range l.subs {
		if set[sid] {
			delete(set, sid)
			if len(set) == 0 {
				delete(l.subs, uri)
				last = append(last, uri)
			}
		}
	}
	l.mu.Unlock()
	if len(last) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.w.up.Timeout)
	defer cancel()
	for _, uri := range last {
		p, _ := json.Marshal(map[string]string{"uri": uri})
		if _, err := l.up.Call(ctx, bus.MethodResourcesUnsubscribe, p, nil); err != nil {
			l.w.log.Info("unsubscribing a resource of an ended session failed", "err", bus.AsError(err).Detail())
		}
	}
}

func emptyResult() *bus.Message {
	return &bus.Message{JSONRPC: "2.0", Result: json.RawMessage(`{}`)}
}
