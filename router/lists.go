package router

import (
	"context"
	"encoding/json"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// list answers an aggregated tools/list, prompts/list, resources/list or
// resources/templates/list: the same request to each server's worker in
// parallel (the next page of only those servers the cursor names), merged in
// server order. Tools and prompts get exposed names; resources and templates
// keep their URIs (a URI two servers list is listed once, for the first). A
// server that fails or exceeds its limit is left out and named in the
// result's _meta (bus.MetaPartial) and, on a streamed answer, in a
// notifications/message warning; when every server fails, the list fails.
func (r *Router) list(ctx context.Context, a *agg, msg *bus.Message, k *kind) ([]byte, *bus.Error) {
	params, cur, e := listParams(msg.Params, k.method, a)
	if e != nil {
		return nil, e
	}
	// A page this caller view already got, unchanged since (no list_changed,
	// no different list from any server), is answered from memory.
	pageKey := "page|" + a.viewKey(k) + "|" + string(msg.Params)
	cached, gen := r.cat.view(pageKey)
	if p, ok := cached.(*pageView); ok && time.Since(p.at) < pageTTL {
		return bus.ResultResponse(msg.ID, p.body), nil
	}
	legs := r.fanOut(ctx, a, listTargets(a, cur), func(i int) []byte {
		p := params
		if c := cur[a.servers[i].Name]; c != "" {
			p = withField(params, "cursor", c)
		}
		return requestBody(msg.ID, msg.Method, p)
	})
	pages, failures, kinds, stored := r.readPages(a, k, legs, cur == nil)
	items, next := r.mergePages(ctx, a, k, legs, pages)
	if len(failures) > 0 && len(failures) == len(legs) {
		return nil, allFailed(k.method, failures, kinds)
	}
	r.warnStream(a.env, k.method, failures)
	out := listResult(k, items, next, failures)
	if len(failures) == 0 {
		// The lists this page was merged from, stored as they came
		// (readPages), moved the generation on by stored: any other change
		// since the page was looked up keeps it out.
		r.cat.keepView(pageKey, &pageView{body: out, at: time.Now()}, gen+uint64(stored))
	}
	return bus.ResultResponse(msg.ID, out), nil
}

// listTargets are the indexes in a.servers of the servers a list asks: all
// of them for the first page (cur nil), else those the cursor names.
func listTargets(a *agg, cur map[string]string) []int {
	var which []int
	for i, s := range a.servers {
		if cur == nil {
			which = append(which, i)
		} else if _, ok := cur[s.Name]; ok {
			which = append(which, i)
		}
	}
	return which
}

// readPages reads each leg's answer as a page (pages[n] for legs[n]; empty
// for a server without the list or that failed) and names the servers that
// failed. On a first page, a whole list is kept in the catalog (stored
// counts those that were new or changed) and a failure marked there.
func (r *Router) readPages(a *agg, k *kind, legs []leg, first bool) (pages []page, failures []bus.PartialFailure, kinds []bus.Kind, stored int) {
	pages = make([]page, len(legs))
	for n, l := range legs {
		s := l.server
		if l.err == nil && len(l.msg.Error) > 0 && methodNotFound(l.msg.Error) {
			r.log.Debug("aggregation: server has no such list", "request_id", a.env.RequestID, "server", s.Name, "method", k.method)
			continue
		}
		var fail *bus.Error
		if l.err != nil || len(l.msg.Error) > 0 {
			fail = l.failure(k.method)
		} else {
			pages[n], fail = readPage(l.msg.Result, k, s)
		}
		if fail != nil {
			failures = append(failures, bus.PartialFailure{Server: s.Name, Code: fail.Kind.Code, Message: fail.Message})
			kinds = append(kinds, fail.Kind)
			r.log.Warn("aggregation: a server is missing from a list", "request_id", a.env.RequestID,
				"server", s.Name, "method", k.method, "code", fail.Kind.Code, "err", fail.Message)
			if first {
				r.cat.fail(a.entryKey(k, l.index))
			}
			continue
		}
		if first && pages[n].next == "" {
			keys := make([]string, len(pages[n].items))
			for j, it := range pages[n].items {
				keys[j] = k.key(it)
			}
			if r.cat.put(a.entryKey(k, l.index), keys) { // a whole list: the name map needs no fetch
				stored++
			}
		}
	}
	return pages, failures, kinds, stored
}

// mergePages merges the pages in server order: tools and prompts under
// their exposed names, resources and templates once per URI (for the first
// server that lists it). next holds each server's cursor for its next page.
func (r *Router) mergePages(ctx context.Context, a *agg, k *kind, legs []leg, pages []page) (items []json.RawMessage, next map[string]string) {
	var name func(pair) string
	if k == kindTools || k == kindPrompts {
		name = r.namer(ctx, a, k)
	}
	items = []json.RawMessage{}
	next = map[string]string{}
	seen := map[string]bool{}
	for n, l := range legs {
		s := l.server
		if pages[n].next != "" {
			next[s.Name] = pages[n].next
		}
		for _, it := range pages[n].items {
			key := k.key(it)
			switch {
			case name != nil:
				it = withField(it, "name", name(pair{s.Name, key}))
			case seen[key]:
				// Warned once per catalog version where the URI map is built (resources.go).
				r.log.Debug("aggregation: a URI another server listed first is left out of the list",
					"request_id", a.env.RequestID, "server", s.Name, k.what, key)
				continue
			default:
				seen[key] = true
			}
			items = append(items, it)
		}
	}
	return items, next
}

// listResult is a merged list's result: its items, the cursor of the next
// page (when any server has one) and the servers missing from it.
func listResult(k *kind, items []json.RawMessage, next map[string]string, failures []bus.PartialFailure) []byte {
	res := map[string]any{k.field: items}
	if len(next) > 0 {
		res["nextCursor"] = encodeCursor(k.method, next)
	}
	if len(failures) > 0 {
		res["_meta"] = map[string]any{bus.MetaPartial: failures}
	}
	return marshal(res)
}

// pageView is a merged list page kept for the caller view that asked for it.
// Any catalog change drops it (catalog.changed); pageTTL bounds it for
// servers that never announce list changes.
type pageView struct {
	body []byte
	at   time.Time
}

const pageTTL = 30 * time.Second

// listParams splits an aggregated list's params into what goes to every
// server (everything but the cursor) and the decoded cursor (nil: first page).
func listParams(raw json.RawMessage, method string, a *agg) (json.RawMessage, map[string]string, *bus.Error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var p map[string]json.RawMessage
	if json.Unmarshal(raw, &p) != nil {
		return nil, nil, bus.Errorf(bus.ErrInvalidParams, "%s: params must be an object", method)
	}
	c, ok := p["cursor"]
	if !ok || string(c) == "null" {
		return raw, nil, nil
	}
	var s string
	if json.Unmarshal(c, &s) != nil {
		return nil, nil, bus.Errorf(bus.ErrInvalidParams, "invalid cursor: it must be a string")
	}
	cur, e := decodeCursor(s, method, a.has)
	if e != nil {
		return nil, nil, e
	}
	delete(p, "cursor")
	if len(p) == 0 {
		return nil, cur, nil
	}
	out := marshal(p)
	return out, cur, nil
}

// withField returns the object raw with key set to the string v; every
// other member is kept as it was.
func withField(raw json.RawMessage, key, v string) json.RawMessage {
	m := map[string]json.RawMessage{}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	m[key], _ = json.Marshal(v)
	out := marshal(m)
	return out
}

// warnStream tells a caller whose answer is streamed which servers are missing
// from it, as notifications/message warnings before the answer (unless the
// session's log level is above warning).
func (r *Router) warnStream(env bus.Envelope, method string, failures []bus.PartialFailure) {
	if env.Stream == "" || len(failures) == 0 || !bus.LogLevelAllows(env.LogLevel, "warning") {
		return
	}
	for _, f := range failures {
		p, _ := json.Marshal(map[string]any{
			"level":  "warning",
			"logger": "mcpbus",
			"data": map[string]string{
				"message": "MCP server " + f.Server + " is missing from this " + method + " answer: " + f.Message,
				"server":  f.Server, "code": f.Code, "reason": f.Message,
			},
		})
		if err := r.nc.Publish(bus.ClientSubject(env.Stream, bus.GatewayToken), bus.Notification("notifications/message", p)); err != nil {
			r.log.Debug("aggregation: warning the caller's stream failed", "request_id", env.RequestID, "err", err)
		}
	}
}
