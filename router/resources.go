package router

import (
	"context"
	"regexp"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// Resources are routed by URI (docs/AGGREGATION.md): an exact match in the
// servers' resources/list results, else the first resources/templates/list
// uriTemplate that matches, servers in name order. URIs are never rewritten.

// uriMap routes URIs for one aggregation.
type uriMap struct {
	byURI     map[string]string // URI -> server (the first by name)
	templates []uriTemplate     // in server order, then as listed
	missing   []string          // servers that could not be listed
}

type uriTemplate struct {
	server string
	text   string
	re     *regexp.Regexp
}

// compileTemplate turns an RFC 6570 URI template into a matcher. {var} (and
// {a,b}) matches one or more characters other than / ? #; {+var} and {#var}
// match anything (including '/'); {/var}, {.var}, {;var}, {?var} and {&var}
// match their optional expansions. Literal parts match themselves.
func compileTemplate(t string) (*regexp.Regexp, bool) {
	var b strings.Builder
	b.WriteString("^")
	for t != "" {
		open := strings.IndexByte(t, '{')
		if open < 0 {
			b.WriteString(regexp.QuoteMeta(t))
			break
		}
		end := strings.IndexByte(t[open:], '}')
		if end < 0 {
			return nil, false
		}
		b.WriteString(regexp.QuoteMeta(t[:open]))
		expr := t[open+1 : open+end]
		t = t[open+end+1:]
		if expr == "" {
			return nil, false
		}
		switch expr[0] {
		case '+':
			b.WriteString(`.+?`)
		case '#':
			b.WriteString(`(?:#.*)?`)
		case '/':
			b.WriteString(`(?:/[^/?#]*)*`)
		case '.':
			b.WriteString(`(?:\.[^/?#.]*)*`)
		case ';':
			b.WriteString(`(?:;[^/?#]*)*`)
		case '?':
			b.WriteString(`(?:\?[^#]*)?`)
		case '&':
			b.WriteString(`(?:&[^#]*)*`)
		default:
			b.WriteString(`[^/?#]+`)
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return re, err == nil
}

// uris returns the aggregation's URI map from the servers' whole lists.
func (r *Router) uris(ctx context.Context, a *agg, refresh bool) *uriMap {
	key := a.viewKey(kindResources)
	v, gen := r.cat.view(key)
	if m, ok := v.(*uriMap); ok && !refresh {
		return m
	}
	resources := r.entries(ctx, a, kindResources, refresh)
	templates := r.entries(ctx, a, kindTemplates, refresh)
	m := &uriMap{byURI: map[string]string{}}
	for i, s := range a.servers {
		if resources[i] == nil || templates[i] == nil {
			m.missing = append(m.missing, s.Name)
		}
		for _, uri := range resources[i] {
			if first, taken := m.byURI[uri]; taken {
				if first != s.Name {
					r.log.Warn("aggregation: two servers list one resource URI; the first by name serves it",
						"uri", uri, "server", first, "also", s.Name)
				}
				continue
			}
			m.byURI[uri] = s.Name
		}
		for _, t := range templates[i] {
			re, ok := compileTemplate(t)
			if !ok {
				r.log.Warn("aggregation: ignoring a resource template that does not parse", "server", s.Name, "uri_template", t)
				continue
			}
			m.templates = append(m.templates, uriTemplate{server: s.Name, text: t, re: re})
		}
	}
	r.cat.keepView(key, m, gen)
	return m
}

// route finds the server for uri; asTemplate also accepts uri as one of the
// listed templates itself (completion/complete of a ref/resource).
func (m *uriMap) route(uri string, asTemplate bool) (string, bool) {
	if s, ok := m.byURI[uri]; ok {
		return s, true
	}
	if asTemplate {
		for _, t := range m.templates {
			if t.text == uri {
				return t.server, true
			}
		}
	}
	for _, t := range m.templates {
		if t.re.MatchString(uri) {
			return t.server, true
		}
	}
	return "", false
}

// lookupURI finds the server for uri: from the cached map, else from freshly
// fetched lists.
func (r *Router) lookupURI(ctx context.Context, a *agg, uri string, asTemplate bool) (string, *bus.Error) {
	if s, ok := r.uris(ctx, a, false).route(uri, asTemplate); ok {
		return s, nil
	}
	m := r.uris(ctx, a, true)
	if s, ok := m.route(uri, asTemplate); ok {
		return s, nil
	}
	return "", unknown("resource", uri, m.missing)
}
