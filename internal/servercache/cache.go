// Package servercache keeps a process's copy of the servers bucket
// (bus.BucketServers): loaded at start, then followed without a JetStream
// consumer (bus.FollowKV), so lookups on the hot path never leave the process
// and an edit reaches every replica at once. It is what bus.Resolve looks
// servers up in (bus.ServerSource).
package servercache

import (
	"context"
	"log/slog"
	"maps"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
)

// Cache is an in-memory copy of the servers bucket kept current
// (Follow), so lookups on the hot path never leave the process and an edit reaches
// every replica at once.
type Cache struct {
	mu      sync.RWMutex
	servers map[string]bus.ServerSpec
	sorted  []bus.ServerSpec
	log     *slog.Logger
	nc      *nats.Conn // the connection it follows the bucket on; nil: a fixed cache
	// notify orders the calls to watchers (OnChange): held while they run,
	// so each sees the changes in the order they were applied.
	notify   sync.Mutex
	watchers []func(name string, spec bus.ServerSpec, present bool) // under mu
}

// Live reports whether the cache follows the bucket now: its connection is
// up (while it is down, an edit made elsewhere does not arrive). A cache
// that follows nothing (the zero value, fixed in tests) is always current.
func (c *Cache) Live() bool {
	return c != nil && (c.nc == nil || c.nc.Status() == nats.CONNECTED)
}

// Follow loads the servers bucket and follows it until ctx ends,
// without a JetStream consumer (FollowKV: only the trusted roles may create
// one). It returns once the initial values are in, so a cache it returns is
// never empty by accident; a bucket the registry has not made yet is waited
// for while ctx lasts.
func Follow(ctx context.Context, nc *nats.Conn, log *slog.Logger) (*Cache, error) {
	c := &Cache{servers: map[string]bus.ServerSpec{}, log: log, nc: nc}
	var loaded atomic.Bool // the start is in: each change re-sorts, the load once
	_, err := bus.FollowKV(ctx, nc, bus.BucketServers, nil, func(e bus.KVEntry) {
		c.apply(e.Key, e.Value, e.Deleted)
		if loaded.Load() {
			c.resort()
		}
	})
	if err != nil {
		return nil, err
	}
	loaded.Store(true)
	c.resort() // after the flag: a change applied meanwhile is sorted here
	return c, nil
}

func (c *Cache) apply(key string, value []byte, deleted bool) {
	var s bus.ServerSpec
	if !deleted {
		var err error
		if s, err = bus.DecodeServerRecord(key, value); err != nil {
			c.log.Error("registry: ignoring a server record; the server keeps its last good one", "key", bus.Shorten(key, 64), "err", err)
			return
		}
	}
	c.notify.Lock()
	defer c.notify.Unlock()
	c.mu.Lock()
	if deleted {
		delete(c.servers, key)
	} else {
		c.servers[key] = s
	}
	watchers := c.watchers
	c.mu.Unlock()
	for _, f := range watchers {
		f(key, s, !deleted)
	}
}

// OnChange calls f for every server in c now (present), then for every
// change as it is applied: a new or changed record (present), or a deleted
// one (not present). Calls come one at a time, in order, on the goroutine
// that follows the bucket; f must not block. Nothing happens on a nil cache.
func (c *Cache) OnChange(f func(name string, spec bus.ServerSpec, present bool)) {
	if c == nil {
		return
	}
	c.notify.Lock()
	defer c.notify.Unlock()
	c.mu.Lock()
	c.watchers = append(c.watchers, f)
	now := maps.Clone(c.servers)
	c.mu.Unlock()
	for name, s := range now {
		f(name, s, true)
	}
}

func (c *Cache) resort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sorted = c.sorted[:0:0]
	for _, s := range c.servers {
		c.sorted = append(c.sorted, s)
	}
	sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].Name < c.sorted[j].Name })
}

// Get returns the named server (none from a nil cache: a process that
// follows no servers).
func (c *Cache) Get(name string) (bus.ServerSpec, bool) {
	if c == nil {
		return bus.ServerSpec{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.servers[name]
	return s, ok
}

// List returns every server, sorted by name. The slice must not be modified.
func (c *Cache) List() []bus.ServerSpec {
	if c == nil {
		return nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.sorted
}

// Names lists the names of the servers in c (nil for a nil cache).
func (c *Cache) Names() []string {
	if c == nil {
		return nil
	}
	l := c.List()
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = s.Name
	}
	return out
}
