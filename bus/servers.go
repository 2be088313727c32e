package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketServers is the KV bucket of ServerSpec records, keyed by server name.
const BucketServers = "mcpbus_servers"

// ServersBucket opens (creating if needed) the servers bucket on the file store.
func ServersBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketServers,
		Description: "mcpbus upstream MCP servers",
		History:     5,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", BucketServers, err)
	}
	return kv, nil
}

// OpenServersBucket opens the servers bucket another service (the registry)
// creates, waiting for it while ctx lasts: readers may not create it (a
// user that may create a stream may also change its limits).
func OpenServersBucket(ctx context.Context, js jetstream.JetStream) (jetstream.KeyValue, error) {
	for {
		kv, err := js.KeyValue(ctx, BucketServers)
		if err == nil {
			return kv, nil
		}
		if !errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("kv bucket %s: %w", BucketServers, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("kv bucket %s: not there (is the registry service running?): %w", BucketServers, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ServerCache is an in-memory copy of the servers bucket kept current by a KV
// watch, so lookups on the hot path never leave the process and an edit reaches
// every replica at once.
type ServerCache struct {
	mu      sync.RWMutex
	servers map[string]ServerSpec
	sorted  []ServerSpec
	log     *slog.Logger
}

// WatchServers loads the bucket and follows it until ctx ends. It returns once the
// initial values are in, so a cache it returns is never empty by accident.
func WatchServers(ctx context.Context, kv jetstream.KeyValue, log *slog.Logger) (*ServerCache, error) {
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", BucketServers, err)
	}
	c := &ServerCache{servers: map[string]ServerSpec{}, log: log}
	for u := range w.Updates() {
		if u == nil {
			break // initial values done
		}
		c.apply(u)
	}
	c.resort()
	go func() {
		defer w.Stop()
		for u := range w.Updates() {
			if u == nil {
				continue
			}
			c.apply(u)
			c.resort()
		}
	}()
	return c, nil
}

func (c *ServerCache) apply(u jetstream.KeyValueEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if u.Operation() != jetstream.KeyValuePut {
		delete(c.servers, u.Key())
		return
	}
	var s ServerSpec
	if err := json.Unmarshal(u.Value(), &s); err != nil {
		c.log.Error("registry: ignoring unreadable server record", "key", u.Key(), "err", err)
		return
	}
	c.servers[u.Key()] = s
}

func (c *ServerCache) resort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sorted = c.sorted[:0:0]
	for _, s := range c.servers {
		c.sorted = append(c.sorted, s)
	}
	sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].Name < c.sorted[j].Name })
}

// Get returns the named server.
func (c *ServerCache) Get(name string) (ServerSpec, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s, ok := c.servers[name]
	return s, ok
}

// List returns every server, sorted by name. The slice must not be modified.
func (c *ServerCache) List() []ServerSpec {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.sorted
}

// BucketOAuthTokens caches upstream OAuth2 access tokens, keyed by server name,
// so the replicas of a worker share one token instead of each fetching its own.
const BucketOAuthTokens = "mcpbus_oauth_tokens"
