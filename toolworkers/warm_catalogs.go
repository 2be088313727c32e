package toolworkers

// Warm catalogs (bus/catalogs_bucket.go): the first page of each list the
// stable worker's shared session fetches from the upstream is kept on disk,
// with a fingerprint of the upstream it came from. After a restart, the
// first list of each kind is answered from the kept page at once, and the
// upstream is asked meanwhile (refresh): its answer fills the cache, is kept
// in turn, and if it differs from the page served, the server's
// list_changed notice goes out as if the upstream had sent it, so clients
// and the routers' merged lists catch up. Only the shared session of the
// stable worker takes part (a credential link's lists are what its caller's
// credentials see; a canary is another upstream), and not for a server with
// tool pinning (warmKey); filters and permissions apply to every answer
// after the catalog, as to a cached one.

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// cacheWarm: answered from the page kept before a restart (a metrics label
// value beside catalog.go's outcomes).
const cacheWarm = "warm"

// refreshTimeout bounds the upstream fetch behind a warm answer.
const refreshTimeout = time.Minute

type warmCatalogs struct {
	lazyKV
	fingerprint string

	ctx    context.Context // ends with the worker: loads and refreshes stop
	cancel context.CancelFunc
	wg     sync.WaitGroup
	loaded chan struct{} // closed once the kept pages were read (or could not be)

	mu    sync.Mutex
	pages map[string]json.RawMessage // kept pages read at start and not served yet, by key
	kept  map[string]json.RawMessage // the last page written, per key
}

func newWarmCatalogs(w *Worker, o Options) warmCatalogs {
	ctx, cancel := context.WithCancel(context.Background())
	u := ""
	if w.up.URL != nil {
		u = w.up.URL.String()
	}
	return warmCatalogs{lazyKV: lazyKV{js: o.JetStream, name: bus.BucketCatalogs}, fingerprint: bus.CatalogFingerprint(w.up.Transport, u, w.up.Command, w.up.Args),
		ctx: ctx, cancel: cancel, loaded: make(chan struct{}), pages: map[string]json.RawMessage{}, kept: map[string]json.RawMessage{}}
}

// load reads the server's kept pages, in the background from the worker's
// start, so that the first lists find them in memory.
func (w *Worker) loadCatalogs() {
	c := &w.catalogs
	if c.js == nil {
		close(c.loaded)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer close(c.loaded)
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		kv := c.bucket(ctx)
		if kv == nil {
			return
		}
		for method := range catalogMethods {
			key := bus.ListKey(w.up.Name, method)
			e, err := kv.Get(ctx, key)
			if err != nil {
				continue
			}
			if result, ok := bus.ReadCatalogEntry(e.Value(), c.fingerprint); ok {
				c.mu.Lock()
				c.pages[key], c.kept[key] = result, result
				c.mu.Unlock()
			}
		}
	}()
}

// end stops the loads and refreshes and waits for them; none starts after.
func (c *warmCatalogs) end() {
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// warmKey is the catalogs key of a first page on the shared stable link,
// "" when the request does not take part. A server with tool pinning never
// does: a replica holds a tool's pin against the definitions it saw from the
// upstream itself, and a kept page may hold the definition a rug pull
// replaced since (pins.go).
func (w *Worker) warmKey(l *link, method, cursorKey string) string {
	if l != w.shared || w.variantLabel() != variantStable || w.catalogs.js == nil || w.pins != nil || cursorKey != method+"\x00" {
		return ""
	}
	return bus.ListKey(w.up.Name, method)
}

// warmAnswer answers the first list of its kind since the worker started
// from the page kept before, if there is one for this upstream: the page
// goes in the link's catalog (later lists hit it) and the refresh starts.
// false otherwise: every later list goes the usual way.
func (w *Worker) warmAnswer(ctx context.Context, l *link, method, cursorKey string) (*bus.Message, bool) {
	key := w.warmKey(l, method, cursorKey)
	if key == "" {
		return nil, false
	}
	c := &w.catalogs
	select {
	case <-c.loaded:
	case <-ctx.Done():
		return nil, false
	}
	c.mu.Lock()
	page := c.pages[key]
	delete(c.pages, key)
	c.mu.Unlock()
	if page == nil {
		return nil, false
	}
	if _, ttl := bus.CacheTTL(page); ttl && w.sharedFresh(ctx, key) {
		return nil, false // a fresh page another replica shares comes first (shared_lists.go)
	}
	msg := &bus.Message{JSONRPC: "2.0", Result: page} // the answer takes the request's id
	gen, ok := l.cache.put(cursorKey, method, msg, time.Now().Add(refreshTimeout))
	if !ok {
		return nil, false // a list is being fetched already: join it
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil { // the worker is stopping
		return msg, true
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		w.refresh(l, method, cursorKey, page, gen)
	}()
	return msg, true
}

// refresh asks the upstream for the list a warm answer came from, puts its
// answer in the link's catalog in the warm page's place (unless the list
// changed meanwhile: gen), and tells everyone the list changed when the
// answer is not the page served.
func (w *Worker) refresh(l *link, method, cursorKey string, served json.RawMessage, gen uint64) {
	ctx, cancel := context.WithTimeout(w.catalogs.ctx, refreshTimeout)
	defer cancel()
	var resp *bus.Message
	err := w.guard(ctx, func() (err error) {
		resp, err = l.up.Call(ctx, method, nil, nil)
		return err
	})
	if err != nil || resp == nil || len(resp.Error) > 0 {
		w.log.Info("could not refresh a list answered from the catalog kept before the restart; it is kept for a minute", "method", method, "err", err)
		return
	}
	w.keepCatalog(l, method, cursorKey, resp)
	info, ierr := l.up.Info(ctx)
	l.cache.replace(cursorKey, method, resp, gen, ierr == nil && declaresListChanged(info, catalogMethods[method]))
	if !sameList(served, resp.Result) {
		w.changes.publish(changedNotice[method], nil)
	}
}

// keepCatalog writes a first page fetched on the shared stable link to the
// catalogs bucket, when it differs from what this worker last wrote there.
// A failure is logged only: the page is a shortcut for the next start.
func (w *Worker) keepCatalog(l *link, method, cursorKey string, resp *bus.Message) {
	key := w.warmKey(l, method, cursorKey)
	if key == "" || resp == nil || len(resp.Error) > 0 || len(resp.Result) == 0 {
		return
	}
	c := &w.catalogs
	c.mu.Lock()
	same := sameList(c.kept[key], resp.Result)
	c.mu.Unlock()
	if same {
		return
	}
	v, ok := bus.NewCatalogEntry(c.fingerprint, resp.Result, time.Now())
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	kv := c.bucket(ctx)
	if kv == nil {
		return
	}
	if _, err := kv.Put(ctx, key, v); err != nil {
		w.log.Debug("could not keep a list for the next start", "method", method, "err", err)
		return
	}
	c.mu.Lock()
	c.kept[key] = resp.Result
	c.mu.Unlock()
}

// forgetCatalogs drops the kept pages of methods, whose upstream list
// changed: a restart before the next fetch must not serve them.
func (w *Worker) forgetCatalogs(methods []string) {
	if w.catalogs.js == nil || w.variantLabel() != variantStable {
		return
	}
	ctx, cancel := context.WithTimeout(w.catalogs.ctx, 5*time.Second)
	defer cancel()
	kv := w.catalogs.bucket(ctx)
	if kv == nil {
		return
	}
	for _, m := range methods {
		key := bus.ListKey(w.up.Name, m)
		if key == "" {
			continue
		}
		w.catalogs.mu.Lock()
		delete(w.catalogs.kept, key)
		w.catalogs.mu.Unlock()
		if err := kv.Purge(ctx, key); err != nil {
			w.log.Debug("could not drop a changed list kept for the next start", "method", m, "err", err)
		}
	}
}

// sameList reports whether two list results are the same but for their
// spacing (compared as compact JSON).
func sameList(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

// changedNotice is the notification that says a list method's list changed.
var changedNotice = map[string]string{
	bus.MethodToolsList:              "notifications/tools/list_changed",
	bus.MethodPromptsList:            "notifications/prompts/list_changed",
	bus.MethodResourcesList:          "notifications/resources/list_changed",
	bus.MethodResourcesTemplatesList: "notifications/resources/list_changed",
}
