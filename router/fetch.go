package router

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// Fetching whole lists for the catalog cache (catalog.go).

// entries returns every server's whole list of kind k (nil for a server that
// could not be listed), fetching what the cache lacks, and, with refresh,
// what it has had for longer than minRefresh. A server whose listing failed
// less than failedRetry ago is not asked again.
func (r *Router) entries(ctx context.Context, a *agg, k *kind, refresh bool) [][]string {
	out := make([][]string, len(a.servers))
	var wg sync.WaitGroup
	for i := range a.servers {
		key := a.entryKey(k, i)
		if e := r.cat.get(key); e != nil && (!refresh || time.Since(e.at) < minRefresh) {
			out[i] = e.items
			continue
		}
		if r.cat.recentlyFailed(key) || a.servers[i].Drain {
			continue // a drained server is not asked (lookupName names it)
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			v, _, _ := r.cat.sf.Do(key.kind+"\x00"+key.server+"\x00"+key.filter, func() (any, error) {
				items, e := r.fetchCatalog(ctx, a, i, k)
				if e != nil {
					r.log.Warn("aggregation: listing a server for the name map failed", "request_id", a.env.RequestID,
						"server", a.servers[i].Name, "method", k.method, "code", e.Kind.Code, "err", e.Message)
					r.cat.fail(key)
					return nil, nil
				}
				r.cat.put(key, items)
				return items, nil
			})
			out[i], _ = v.([]string)
		}(i)
	}
	wg.Wait()
	return out
}

// fetchCatalog walks every page of server i's list of kind k.
func (r *Router) fetchCatalog(ctx context.Context, a *agg, i int, k *kind) ([]string, *bus.Error) {
	raw, e := r.fetchItems(ctx, a, i, k)
	if e != nil {
		return nil, e
	}
	items := make([]string, len(raw))
	for j, it := range raw {
		items[j] = k.key(it)
	}
	return items, nil
}

// fetchItems walks every page of server i's list of kind k and returns its
// items as listed (tool search indexes whole definitions: toolindex.go).
func (r *Router) fetchItems(ctx context.Context, a *agg, i int, k *kind) ([]json.RawMessage, *bus.Error) {
	s := a.servers[i]
	h := withoutStream(a.h)
	items := []json.RawMessage{}
	next := ""
	for range maxCatalogPages {
		var params json.RawMessage
		if next != "" {
			params, _ = json.Marshal(map[string]string{"cursor": next})
		}
		msg, e := r.askRPC(ctx, h, a.env, s, requestBody(json.RawMessage(catalogID), k.method, params), r.listLimit(s))
		if e != nil {
			return nil, e
		}
		if len(msg.Error) > 0 {
			if methodNotFound(msg.Error) {
				return items, nil
			}
			l := leg{server: s, msg: msg}
			return nil, l.failure(k.method)
		}
		p, e := readPage(msg.Result, k, s)
		if e != nil {
			return nil, e
		}
		items = append(items, p.items...)
		if p.next == "" {
			return items, nil
		}
		next = p.next
	}
	r.log.Warn("aggregation: a server's list has more pages than the router walks; the rest is not routable",
		"server", s.Name, "method", k.method, "pages", maxCatalogPages)
	return items, nil
}

// page is one server's answer to a list request.
type page struct {
	items []json.RawMessage
	next  string
}

func readPage(result json.RawMessage, k *kind, s bus.ServerSpec) (page, *bus.Error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(result, &m); err != nil {
		return page{}, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered %s with a result that is not an object", s.Name, k.method)
	}
	var p page
	if raw, ok := m[k.field]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &p.items); err != nil {
			return page{}, bus.Errorf(bus.ErrUpstreamProtocol, "upstream server %q answered %s with %q that is not an array", s.Name, k.method, k.field)
		}
	}
	if raw, ok := m["nextCursor"]; ok {
		_ = json.Unmarshal(raw, &p.next)
	}
	return p, nil
}

// methodNotFound reports whether an upstream error object is -32601: a server
// without that list (no prompts, say) has an empty one.
func methodNotFound(errObj json.RawMessage) bool {
	var e struct {
		Code int `json:"code"`
	}
	return json.Unmarshal(errObj, &e) == nil && e.Code == -32601
}
