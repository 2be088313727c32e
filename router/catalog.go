package router

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"golang.org/x/sync/singleflight"
)

// The router's catalog cache: per server, caller filter and kind (tools,
// prompts, resources, templates), the names (or URIs) the server lists, all
// pages. It exists to route calls by an exact map; answers to list requests
// always come from the workers. An entry is filled by an aggregated list whose
// first page was the whole list, or on demand (a call naming something the
// cache does not know) by walking the server's pages; it is dropped when the
// server announces a list change on bus.NotifySubject. Concurrent fetches of
// one entry collapse into one.
const (
	maxCatalogEntries = 4096
	maxCatalogViews   = 1024
	maxCatalogPages   = 100
	// minRefresh: a name the cache does not know refetches entries older than
	// this, so a caller naming unknown tools cannot make the router list
	// upstream on every call.
	minRefresh = time.Second
	// failedRetry: a server that could not be listed is not asked again for
	// the name map before this has passed, so calls to the other servers do
	// not each wait for one that hangs.
	failedRetry = 10 * time.Second
	catalogID   = `"mcpbus-catalog"`
)

// kind is one of the four lists.
type kind struct {
	method string // the list method
	field  string // the result's array
	what   string // the item, in messages
}

var (
	kindTools     = &kind{bus.MethodToolsList, "tools", "tool"}
	kindPrompts   = &kind{bus.MethodPromptsList, "prompts", "prompt"}
	kindResources = &kind{bus.MethodResourcesList, "resources", "resource"}
	kindTemplates = &kind{bus.MethodResourcesTemplatesList, "resourceTemplates", "resource template"}
)

// key is the item's identity in the kind: name, uri or uriTemplate.
func (k *kind) key(item json.RawMessage) string {
	var v struct {
		Name        string `json:"name"`
		URI         string `json:"uri"`
		URITemplate string `json:"uriTemplate"`
	}
	_ = json.Unmarshal(item, &v)
	switch k {
	case kindResources:
		return v.URI
	case kindTemplates:
		return v.URITemplate
	}
	return v.Name
}

type entryKey struct{ kind, server, filter string }

type entry struct {
	items []string
	at    time.Time
}

type catalog struct {
	mu      sync.Mutex
	entries map[entryKey]*entry
	failed  map[entryKey]time.Time // when listing failed
	views   map[string]any         // *nameMap or *uriMap by viewKey
	gen     uint64                 // bumped by every change, so a view built meanwhile is not kept
	sf      singleflight.Group
	// indexes are tool search indexes by view (toolindex.go), valid while
	// gen is theirs; at most maxIndexes.
	indexes map[string]*toolIndex
}

func newCatalog() *catalog {
	return &catalog{entries: map[entryKey]*entry{}, failed: map[entryKey]time.Time{}, views: map[string]any{},
		indexes: map[string]*toolIndex{}}
}

// put stores a server's whole list; changed says it was new or another
// (the catalog's generation moved on by one).
func (c *catalog) put(k entryKey, items []string) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[k]; ok && slices.Equal(old.items, items) {
		old.at = time.Now()
		return false
	}
	if len(c.entries) >= maxCatalogEntries {
		c.evictOldest()
	}
	c.entries[k] = &entry{items: items, at: time.Now()}
	delete(c.failed, k)
	c.changed()
	return true
}

// fail notes that k's server could not be listed.
func (c *catalog) fail(k entryKey) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failed) >= maxCatalogEntries {
		clear(c.failed)
	}
	c.failed[k] = time.Now()
}

// recentlyFailed reports whether listing k failed less than failedRetry ago.
func (c *catalog) recentlyFailed(k entryKey) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	at, ok := c.failed[k]
	return ok && time.Since(at) < failedRetry
}

func (c *catalog) evictOldest() {
	var oldest entryKey
	var at time.Time
	for k, e := range c.entries {
		if at.IsZero() || e.at.Before(at) {
			oldest, at = k, e.at
		}
	}
	delete(c.entries, oldest)
}

// changed drops every built view; the caller holds mu.
func (c *catalog) changed() {
	c.gen++
	clear(c.views)
}

// drop forgets a server's entries of the given kinds (every caller filter).
func (c *catalog) drop(server string, kinds ...*kind) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k := range c.entries {
		if k.server == server && slices.ContainsFunc(kinds, func(kd *kind) bool { return kd.method == k.kind }) {
			delete(c.entries, k)
			n++
		}
	}
	for k := range c.failed {
		if k.server == server {
			delete(c.failed, k)
		}
	}
	c.changed()
	return n
}

func (c *catalog) get(k entryKey) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entries[k]
}

func (c *catalog) view(key string) (any, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.views[key], c.gen
}

func (c *catalog) keepView(key string, v any, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if len(c.views) >= maxCatalogViews {
		clear(c.views)
	}
	c.views[key] = v
}

func (a *agg) entryKey(k *kind, i int) entryKey {
	return entryKey{kind: k.method, server: a.servers[i].Name, filter: a.filters[i]}
}

func (a *agg) viewKey(k *kind) string {
	var b strings.Builder
	b.WriteString(k.method)
	for i, s := range a.servers {
		b.WriteString("|")
		b.WriteString(s.Name)
		b.WriteString("=")
		b.WriteString(a.filters[i])
		b.WriteString("=")
		b.WriteString(a.ns[i]) // names depend on it (alias, unprefixed)
	}
	return b.String()
}

// onNotify drops cached name maps of a server that announced a list change.
func (r *Router) onNotify(m *nats.Msg) {
	server := bus.ServerOfNotify(m.Subject)
	var n struct {
		Method string `json:"method"`
	}
	if json.Unmarshal(m.Data, &n) != nil {
		return
	}
	var kinds []*kind
	switch n.Method {
	case "notifications/tools/list_changed":
		kinds = []*kind{kindTools}
	case "notifications/prompts/list_changed":
		kinds = []*kind{kindPrompts}
	case "notifications/resources/list_changed":
		kinds = []*kind{kindResources, kindTemplates}
	default:
		return
	}
	dropped := r.cat.drop(server, kinds...)
	r.log.Debug("aggregation: a server's list changed; cached name maps dropped", "server", server, "method", n.Method, "entries", dropped)
}
