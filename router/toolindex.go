package router

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mcpbus/mcpbus/router/search"
)

// The tool search index (toolsearch.go): every tool a caller view lists,
// whole definitions under the names the caller calls them by, and a BM25
// index over them (router/search). It is built from the workers' tools/list
// answers, so it holds exactly what a tools/list of the same caller would:
// the worker has already left out what the key's tool permissions, the
// server's allowed_tools and tool pinning withhold. It is kept among the
// catalog's views (catalog.go), keyed like the name map (servers, caller
// filters, namespaces), so a list_changed of any server, or any server
// listing differently, drops it; indexTTL bounds it for servers that never
// announce a change.

// toolIndex is one caller view's searchable tools.
type toolIndex struct {
	ix     *search.Index
	tools  []json.RawMessage // definitions, "name" the exposed one; in name order
	names  []string
	lines  []string // the first line of each description
	byName map[string]int
	// missing names the servers that could not be listed when it was built.
	missing []string
	at      time.Time
	ttl     time.Duration
	gen     uint64 // the catalog's generation it was built at
}

const (
	// indexTTL bounds a complete index; one that misses a server is
	// rebuilt sooner (failedRetry).
	indexTTL = pageTTL
	// maxLineRunes bounds a description's line in search results.
	maxLineRunes = 200
	// maxIndexes bounds the indexes kept; the one built longest ago goes.
	maxIndexes = 64
)

// searchView is the tools a tool search request covers: an aggregation, or
// one selected server (bare: its tools keep their own names).
type searchView struct {
	a    *agg
	bare bool
}

func (v *searchView) key() string { return "search|" + v.a.viewKey(kindTools) }

// index returns v's tool index: the kept one, else (or with refresh, when
// the kept one is older than minRefresh) one built from fresh lists.
// Concurrent builds of one view collapse into one.
func (r *Router) index(ctx context.Context, v *searchView, refresh bool) *toolIndex {
	key := v.key()
	if t := r.cat.index(key); t != nil && time.Since(t.at) < t.ttl && (!refresh || time.Since(t.at) < minRefresh) {
		return t
	}
	got, _, _ := r.cat.sf.Do(key, func() (any, error) { return r.buildIndex(ctx, v, key), nil })
	return got.(*toolIndex)
}

// buildIndex lists every server of v whole (in parallel), names each tool as
// a call would name it, and indexes them.
func (r *Router) buildIndex(ctx context.Context, v *searchView, key string) *toolIndex {
	a := v.a
	// A change of the catalog during the fetch (a list_changed) may have
	// come after a server answered: what is built from it is not kept.
	before := r.cat.generation()
	lists := make([][]json.RawMessage, len(a.servers))
	var wg sync.WaitGroup
	for i, s := range a.servers {
		if s.Drain {
			continue // not asked: its tools are not listed while it is drained
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			items, e := r.fetchItems(ctx, a, i, kindTools)
			if e != nil {
				r.log.Warn("tool search: listing a server failed; its tools are not searchable now", "request_id", a.env.RequestID,
					"server", a.servers[i].Name, "code", e.Kind.Code, "err", e.Message)
				return
			}
			lists[i] = items
		}(i)
	}
	wg.Wait()
	stable := r.cat.generation() == before
	// The catalog learns the lists too, so a call by name needs no fetch.
	bare := make([][]string, len(lists))
	for i, items := range lists {
		if items == nil {
			continue
		}
		bare[i] = make([]string, len(items))
		for j, it := range items {
			bare[i][j] = kindTools.key(it)
		}
		if !v.bare {
			r.cat.put(a.entryKey(kindTools, i), bare[i])
		}
	}
	gen := r.cat.generation()
	name := func(p pair) string { return p.name }
	if !v.bare {
		name = r.namer(ctx, a, kindTools)
	}
	t := &toolIndex{byName: map[string]int{}, at: time.Now(), ttl: indexTTL, gen: gen}
	type tool struct {
		name string
		def  json.RawMessage
	}
	var all []tool
	for i, items := range lists {
		if items == nil {
			t.missing = append(t.missing, a.servers[i].Name)
			if !a.servers[i].Drain {
				t.ttl = failedRetry
			}
			continue
		}
		for j, it := range items {
			n := name(pair{a.servers[i].Name, bare[i][j]})
			if !v.bare {
				it = withField(it, "name", n)
			}
			all = append(all, tool{n, it})
		}
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].name < all[j].name })
	docs := make([]search.Doc, 0, len(all))
	for _, tl := range all {
		if _, dup := t.byName[tl.name]; dup {
			continue // one server listing a name twice: the first counts, as for a call
		}
		d := readDoc(tl.name, tl.def)
		t.byName[tl.name] = len(t.tools)
		t.tools = append(t.tools, tl.def)
		t.names = append(t.names, tl.name)
		t.lines = append(t.lines, firstLine(d.Description))
		docs = append(docs, d)
	}
	t.ix = search.New(docs)
	// Keep it only if the catalog still holds the lists it was built from
	// (no list_changed in between); a later change retires it (gen).
	if stable && r.listsHeld(v, bare) {
		r.cat.keepIndex(key, t)
	}
	return t
}

// index is the kept index of view key, if the catalog has not changed since
// it was built.
func (c *catalog) index(key string) *toolIndex {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.indexes[key]; t != nil && t.gen == c.gen {
		return t
	}
	return nil
}

func (c *catalog) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// keepIndex keeps t for view key unless the catalog changed since it was
// built, making room by dropping the index built longest ago.
func (c *catalog) keepIndex(key string, t *toolIndex) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.gen != c.gen {
		return
	}
	if _, ok := c.indexes[key]; !ok && len(c.indexes) >= maxIndexes {
		oldest := ""
		for k, x := range c.indexes {
			if oldest == "" || x.at.Before(c.indexes[oldest].at) {
				oldest = k
			}
		}
		delete(c.indexes, oldest)
	}
	c.indexes[key] = t
}

// listsHeld reports whether the catalog holds exactly the lists bare.
func (r *Router) listsHeld(v *searchView, bare [][]string) bool {
	if v.bare {
		return true // it keeps no catalog entries
	}
	for i, items := range bare {
		if items == nil {
			continue
		}
		e := r.cat.get(v.a.entryKey(kindTools, i))
		if e == nil || !slices.Equal(e.items, items) {
			return false
		}
	}
	return true
}

// readDoc is what the index reads of a tool: its name, its title and
// description, and its input schema's property names and descriptions.
func readDoc(name string, def json.RawMessage) search.Doc {
	var t struct {
		Title       string `json:"title"`
		Description string `json:"description"`
		InputSchema struct {
			Properties map[string]struct {
				Title       string `json:"title"`
				Description string `json:"description"`
			} `json:"properties"`
		} `json:"inputSchema"`
	}
	_ = json.Unmarshal(def, &t)
	var schema strings.Builder
	props := make([]string, 0, len(t.InputSchema.Properties))
	for p := range t.InputSchema.Properties {
		props = append(props, p)
	}
	sort.Strings(props)
	for _, p := range props {
		d := t.InputSchema.Properties[p]
		schema.WriteString(p + " " + d.Title + " " + d.Description + "\n")
	}
	desc := t.Description
	if t.Title != "" {
		desc = t.Title + "\n" + desc
	}
	return search.Doc{Name: name, Description: desc, Schema: schema.String()}
}

// firstLine is a description's first non-empty line, cut to maxLineRunes.
func firstLine(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		if utf8.RuneCountInString(line) > maxLineRunes {
			r := []rune(line)
			line = string(r[:maxLineRunes-1]) + "…"
		}
		return line
	}
	return ""
}

// searchHit is one result of search_tools.
type searchHit struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Score       float64 `json:"score"`
}

// search ranks t's tools for query.
func (t *toolIndex) search(query string, limit int) []searchHit {
	hits := t.ix.Search(query, limit)
	out := make([]searchHit, len(hits))
	for i, h := range hits {
		out[i] = searchHit{Name: t.names[h.Doc], Description: t.lines[h.Doc], Score: float64(int64(h.Score*1000+0.5)) / 1000}
	}
	return out
}

// definition is the whole definition of the tool called name.
func (t *toolIndex) definition(name string) (json.RawMessage, bool) {
	i, ok := t.byName[name]
	if !ok {
		return nil, false
	}
	return t.tools[i], true
}

// missingNote names the servers missing from t, for a result's text.
func (t *toolIndex) missingNote() string {
	if len(t.missing) == 0 {
		return ""
	}
	return " (could not be listed now: " + strings.Join(t.missing, ", ") + ")"
}
