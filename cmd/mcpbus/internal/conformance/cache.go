package conformance

import (
	"context"
	"reflect"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// listTTLMs is the freshness the fixture promises for its lists, its
// discover result and its unchanging resources: a minute. A list change
// still invalidates at once (notifications/*/list_changed).
const listTTLMs = 60_000

// setCacheable sets the caching hints (SEP-2549) of the results that carry
// them, for 2026-07-28 requests only: legacy results keep go-sdk's defaults
// (ttlMs 0, cacheScope "public"), exactly as before. test://watched-resource
// changes every --watch-interval, so its reads stay at ttlMs 0. Everything
// the fixture serves is the same for every client: the scope is "public".
func setCacheable(_ context.Context, req mcp.Request, c *mcp.Cacheable) {
	p := req.GetParams()
	// A legacy list request may have no params: a nil pointer, whose
	// GetMeta would dereference it.
	if v := reflect.ValueOf(p); !v.IsValid() || (v.Kind() == reflect.Pointer && v.IsNil()) {
		return
	}
	if v, _ := p.GetMeta()[mcp.MetaKeyProtocolVersion].(string); v < modernVersion {
		return
	}
	c.CacheScope = "public"
	if r, ok := p.(*mcp.ReadResourceParams); ok && r.URI == watchedURI {
		c.TTLMs = 0
		return
	}
	c.TTLMs = listTTLMs
}
