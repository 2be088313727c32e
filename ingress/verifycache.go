package ingress

import (
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// verifyCache keeps auth's answers for keys auth lets us reuse
// (bus.VerifyCacheTTL): a call then costs no bus round trip to auth. It is
// cleared by every key or team change (bus.SubjectAuthChanged) and every
// revocation, never holds a rate-limited key (auth must count each of its
// calls), never outlives a key's expiry, and is keyed by the key's hash.
type verifyCache struct {
	mu  sync.Mutex
	m   map[string]cachedIdentity
	gen uint64 // bumped by every clear, so an answer asked before it is not kept
	now func() time.Time
}

type cachedIdentity struct {
	id    bus.Identity
	until time.Time
}

// maxVerifyCache bounds the cache; when full it starts over.
const maxVerifyCache = 10000

func newVerifyCache() *verifyCache {
	return &verifyCache{m: map[string]cachedIdentity{}, now: time.Now}
}

// get returns the cached identity for keyHash and the generation to pass to
// put when there is none.
func (c *verifyCache) get(keyHash string) (bus.Identity, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[keyHash]
	if ok && c.now().Before(e.until) {
		return e.id, true, c.gen
	}
	if ok {
		delete(c.m, keyHash)
	}
	return bus.Identity{}, false, c.gen
}

// put keeps id for keyHash unless the cache was cleared since gen was read,
// or auth says the answer must not be reused.
func (c *verifyCache) put(keyHash string, id bus.Identity, gen uint64) {
	if id.RateLimited {
		return
	}
	until := c.now().Add(bus.VerifyCacheTTL)
	if id.Expires != nil && id.Expires.Before(until) {
		until = *id.Expires
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != c.gen {
		return
	}
	if len(c.m) >= maxVerifyCache {
		clear(c.m)
	}
	c.m[keyHash] = cachedIdentity{id: id, until: until}
}

func (c *verifyCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.m)
}

// startVerifyCache follows auth's change announcements. If it cannot, the
// ingress asks auth on every request instead of caching blind.
func (g *Ingress) startVerifyCache() {
	sub, err := g.nc.Subscribe(bus.SubjectAuthChanged, func(*nats.Msg) { g.verified.clear() })
	if err != nil {
		g.log.Error("cannot follow key changes; asking auth on every request", "err", err)
		g.verified = nil
		return
	}
	g.verifiedSub = sub
}
