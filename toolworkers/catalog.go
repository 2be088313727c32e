package toolworkers

// The catalog cache: each upstream session (a link: the shared one, one per
// credential set, one per private downstream session) keeps the results of
// tools/list, prompts/list, resources/list and resources/templates/list, per
// cursor, exactly as the upstream sent them. Concurrent requests for an entry
// nobody has yet share one upstream call. An entry ends when the upstream
// says its list changed (notifications/*/list_changed, on any of its
// streams), when the session is re-initialized, and, for a list whose server
// does not promise list_changed notifications (capabilities.<x>.listChanged),
// catalogTTL after it was fetched, and, sooner, when the result's own ttlMs
// (MCP 2026-07-28) says; a hit then answers with the ttlMs left. Upstream errors are never cached (callers
// waiting on the failed fetch get its answer). The caller's filters
// (allowed_tools, key permissions) apply to each answer after the cache.

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// catalogTTL is how long a list is kept when its server sends no list_changed.
const catalogTTL = time.Minute

// catalogMethods are the cached list methods, and the capability whose
// listChanged promises a notification when the list changes.
var catalogMethods = map[string]string{
	"tools/list":               "tools",
	"prompts/list":             "prompts",
	"resources/list":           "resources",
	"resources/templates/list": "resources",
}

// listChangedMethods maps an upstream's list_changed notification to the
// cached methods it makes stale.
var listChangedMethods = map[string][]string{
	"notifications/tools/list_changed":     {bus.MethodToolsList},
	"notifications/prompts/list_changed":   {bus.MethodPromptsList},
	"notifications/resources/list_changed": {bus.MethodResourcesList, bus.MethodResourcesTemplatesList},
}

// Cache outcomes, as metrics label values.
const (
	cacheMiss   = "miss"   // fetched from the upstream for this call
	cacheHit    = "hit"    // answered from the cache
	cacheJoined = "joined" // shared another call's fetch
	cacheShared = "shared" // read from another replica's fetch (shared_lists.go)
)

type catalog struct {
	mu      sync.Mutex
	entries map[string]*catalogEntry // method + "\x00" + cursor
	gen     map[string]uint64        // per method: bumped by every invalidation
	// params are the tools' x-mcp-header annotations, read from a whole
	// tools/list (params.go); nil: not known. Dropped with the tools/list
	// entries.
	params      map[string][]bus.ParamHeader
	paramsUntil time.Time // zero: until dropped
}

type catalogEntry struct {
	method  string
	gen     uint64
	done    chan struct{} // closed when the fetch ended
	msg     *bus.Message  // the upstream's response (result or JSON-RPC error)
	err     error         // a gateway error
	gaveUp  bool          // the fetching call ended first: waiters fetch again
	expires time.Time     // zero: until invalidated
	// ttlUntil is when the result's own ttlMs ends (zero: it gave none):
	// a hit answers with what is left of it (remaining).
	ttlUntil time.Time
}

// remaining is e's result for a cache hit at now: with ttlMs set to what is
// left of the upstream's, so a client's freshness ends with the gateway's.
func (e *catalogEntry) remaining(now time.Time) *bus.Message {
	if e.ttlUntil.IsZero() || e.msg == nil || len(e.msg.Result) == 0 {
		return e.msg
	}
	m := *e.msg
	m.Result = bus.WithTTL(m.Result, e.ttlUntil.Sub(now))
	return &m
}

// catalogKey returns the cache key of a list request; ok is false when its
// params hold anything but a cursor and _meta (then it is not cached).
func catalogKey(method string, params json.RawMessage) (key string, ok bool) {
	if _, listed := catalogMethods[method]; !listed {
		return "", false
	}
	if len(params) == 0 || string(params) == "{}" || string(params) == "null" {
		return method + "\x00", true
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(params, &p) != nil {
		return "", false
	}
	cursor := ""
	for k, v := range p {
		switch k {
		case "_meta":
		case "cursor":
			if json.Unmarshal(v, &cursor) != nil {
				return "", false
			}
		default:
			return "", false
		}
	}
	return method + "\x00" + cursor, true
}

// fetch answers a list request from the cache, or by call (run by one caller
// for everyone asking meanwhile). listChanged reports whether the server
// promises list_changed notifications for method (asked after a fetch).
func (c *catalog) fetch(ctx context.Context, key, method string, call func() (*bus.Message, error), listChanged func() bool) (*bus.Message, string, error) {
	for {
		e, leader, outcome := c.begin(key, method)
		if leader {
			msg, err := call()
			c.finish(key, e, msg, err, ctx.Err() != nil, listChanged)
			return msg, cacheMiss, err
		}
		select {
		case <-e.done:
		case <-ctx.Done():
			return nil, outcome, ctx.Err()
		}
		if e.gaveUp {
			continue
		}
		if outcome == cacheHit {
			return e.remaining(time.Now()), outcome, e.err
		}
		return e.msg, outcome, e.err
	}
}

// begin returns the live entry for key, or a new one the caller must fill.
func (c *catalog) begin(key, method string) (e *catalogEntry, leader bool, outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		select {
		case <-e.done:
			if e.expires.IsZero() || time.Now().Before(e.expires) {
				return e, false, cacheHit
			}
			// expired: fetch again
		default:
			return e, false, cacheJoined
		}
	}
	if c.entries == nil {
		c.entries, c.gen = map[string]*catalogEntry{}, map[string]uint64{}
	}
	e = &catalogEntry{method: method, gen: c.gen[method], done: make(chan struct{})}
	c.entries[key] = e
	return e, true, cacheMiss
}

// finish publishes a fetch's outcome; only a result fetched in the current
// generation stays cached.
func (c *catalog) finish(key string, e *catalogEntry, msg *bus.Message, err error, gaveUp bool, listChanged func() bool) {
	keep := err == nil && msg != nil && len(msg.Error) == 0
	if keep {
		e.keepFor(msg, listChanged)
	}
	c.mu.Lock()
	e.msg, e.err, e.gaveUp = msg, err, gaveUp && err != nil
	if (!keep || e.gen != c.gen[e.method]) && c.entries[key] == e {
		delete(c.entries, key)
	}
	c.mu.Unlock()
	close(e.done)
}

// keepFor sets how long e keeps msg, a result: until invalidated when the
// server promises list_changed notices, else catalogTTL; a 2026-07-28
// server's own freshness bound (ttlMs) shortens either rule; 0 or none
// leaves them (a list_changed still drops the entry at once).
func (e *catalogEntry) keepFor(msg *bus.Message, listChanged func() bool) {
	if !listChanged() {
		e.expires = time.Now().Add(catalogTTL)
	}
	if ttl, ok := bus.CacheTTL(msg.Result); ok {
		until := time.Now().Add(ttl)
		e.ttlUntil = until
		if e.expires.IsZero() || until.Before(e.expires) {
			e.expires = until
		}
	}
}

// put installs msg as key's entry until expires, unless key has one (live,
// or being fetched); it returns the method's generation, for replace.
func (c *catalog) put(key, method string, msg *bus.Message, expires time.Time) (gen uint64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries, c.gen = map[string]*catalogEntry{}, map[string]uint64{}
	}
	if e := c.entries[key]; e != nil {
		return 0, false
	}
	e := &catalogEntry{method: method, gen: c.gen[method], done: make(chan struct{}), msg: msg, expires: expires}
	close(e.done)
	c.entries[key] = e
	return e.gen, true
}

// replace puts msg, a result fetched for key in generation gen, in its
// place, kept as a fetch's would be; nothing when the method's list changed
// since gen (its entries were dropped).
func (c *catalog) replace(key, method string, msg *bus.Message, gen uint64, listChanged bool) {
	e := &catalogEntry{method: method, gen: gen, done: make(chan struct{}), msg: msg}
	e.keepFor(msg, func() bool { return listChanged })
	close(e.done)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries != nil && c.gen[method] == gen {
		c.entries[key] = e
	}
}

// invalidate drops the entries of methods (all methods if none are named);
// fetches in flight finish for their callers but are not kept.
func (c *catalog) invalidate(methods ...string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		return
	}
	if len(methods) == 0 {
		for m := range catalogMethods {
			methods = append(methods, m)
		}
	}
	for _, m := range methods {
		c.gen[m]++
		if m == bus.MethodToolsList {
			c.params = nil
		}
	}
	for k, e := range c.entries {
		for _, m := range methods {
			if e.method == m {
				delete(c.entries, k)
				break
			}
		}
	}
}

// reset drops every finished entry: the session they came from is gone.
// Fetches in flight stay: their calls run on the new session (a call on the
// forgotten one fails with 404 and is sent again on the new one), and the
// first session opens under its first fetch.
func (c *catalog) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.params = nil
	for k, e := range c.entries {
		select {
		case <-e.done:
			delete(c.entries, k)
		default:
		}
	}
}

// declaresListChanged reads capabilities.<feature>.listChanged from an
// initialize result.
func declaresListChanged(init json.RawMessage, feature string) bool {
	var r struct {
		Capabilities map[string]struct {
			ListChanged bool `json:"listChanged"`
		} `json:"capabilities"`
	}
	if json.Unmarshal(init, &r) != nil {
		return false
	}
	return r.Capabilities[feature].ListChanged
}

// declares reports whether an initialize result's capabilities name feature.
func declares(init json.RawMessage, feature string) bool {
	var r struct {
		Capabilities map[string]json.RawMessage `json:"capabilities"`
	}
	if json.Unmarshal(init, &r) != nil {
		return false
	}
	v, ok := r.Capabilities[feature]
	return ok && string(v) != "null"
}

// listThroughCatalog answers a list request (method, catalog key) on link l
// from its catalog: the page kept before a restart for the first one
// (warm_catalogs.go), then the cache, another replica's fresh page
// (shared_lists.go), or call, the upstream fetch, whose first pages are kept
// for the next start. cache is the outcome, also counted in the metrics.
func (w *Worker) listThroughCatalog(ctx context.Context, l *link, method, key string, call func() (*bus.Message, error)) (resp *bus.Message, cache string, err error) {
	if resp, ok := w.warmAnswer(ctx, l, method, key); ok {
		w.metrics.cacheOutcome(w.up.Name, method, cacheWarm)
		return resp, cacheWarm, nil
	}
	fetched := func() (*bus.Message, error) {
		resp, err := call()
		if err == nil {
			w.keepCatalog(l, method, key, resp)
		}
		return resp, err
	}
	var shared bool
	resp, cache, err = l.cache.fetch(ctx, key, method, w.sharedCall(ctx, l, method, key, &shared, fetched), func() bool {
		info, err := l.up.Info(ctx)
		return err == nil && declaresListChanged(info, catalogMethods[method])
	})
	if shared && cache == cacheMiss {
		cache = cacheShared // another replica's fetch (shared_lists.go)
	}
	if err != nil && err == ctx.Err() { // gave up waiting for another call's fetch
		err = bus.ContextError(ctx, w.up.Name)
	}
	w.metrics.cacheOutcome(w.up.Name, method, cache)
	return resp, cache, err
}
