package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketServers is the KV bucket of ServerSpec records, keyed by server name.
const BucketServers = "mcpbus_servers"

// ServersBucket opens (creating if needed) the servers bucket on the file store.
func ServersBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) (jetstream.KeyValue, error) {
	return EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketServers,
		Description: "mcpbus upstream MCP servers",
		History:     5,
		Storage:     jetstream.FileStorage,
	}, p)
}

// ServerCache is an in-memory copy of the servers bucket kept current
// (FollowServers), so lookups on the hot path never leave the process and an edit reaches
// every replica at once.
type ServerCache struct {
	mu      sync.RWMutex
	servers map[string]ServerSpec
	sorted  []ServerSpec
	log     *slog.Logger
	nc      *nats.Conn // the connection it follows the bucket on; nil: a fixed cache
}

// Live reports whether the cache follows the bucket now: its connection is
// up (while it is down, an edit made elsewhere does not arrive). A cache
// that follows nothing (the zero value, fixed in tests) is always current.
func (c *ServerCache) Live() bool {
	return c != nil && (c.nc == nil || c.nc.Status() == nats.CONNECTED)
}

// DecodeServerRecord reads the record stored under key in the servers
// bucket. One that does not name its key is refused: anything on the bus can
// make JetStream write an answer of its own under any key (msgget.go), and
// only the registry writes records, each naming its server.
func DecodeServerRecord(key string, value []byte) (ServerSpec, error) {
	var s ServerSpec
	if err := json.Unmarshal(value, &s); err != nil {
		return ServerSpec{}, fmt.Errorf("unreadable: %w", err)
	}
	if s.Name != key {
		return ServerSpec{}, errors.New("it does not name its key: not the registry's")
	}
	s.timeout = parsedTimeout{s.Timeout, parseCallTimeout(s.Timeout)}
	return s, nil
}

// FollowServers loads the servers bucket and follows it until ctx ends,
// without a JetStream consumer (FollowKV: only the trusted roles may create
// one). It returns once the initial values are in, so a cache it returns is
// never empty by accident; a bucket the registry has not made yet is waited
// for while ctx lasts.
func FollowServers(ctx context.Context, nc *nats.Conn, log *slog.Logger) (*ServerCache, error) {
	c := &ServerCache{servers: map[string]ServerSpec{}, log: log, nc: nc}
	var loaded atomic.Bool // the start is in: each change re-sorts, the load once
	_, err := FollowKV(ctx, nc, BucketServers, nil, func(e KVEntry) {
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

func (c *ServerCache) apply(key string, value []byte, deleted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if deleted {
		delete(c.servers, key)
		return
	}
	s, err := DecodeServerRecord(key, value)
	if err != nil {
		c.log.Error("registry: ignoring a server record; the server keeps its last good one", "key", Shorten(key, 64), "err", err)
		return
	}
	c.servers[key] = s
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

// EnsureOAuthTokenBucket creates (or updates) the bucket in which worker
// replicas share OAuth2 access tokens (sealed: secrets.go), in memory. The
// registry makes it: the workers' bus users may not create buckets
// (natsauth.go). It is the stream of a KV bucket as nats.go makes one, but
// without direct gets: workers write it, and a direct get would answer their
// content raw onto any reply subject (msgget.go); nats.go's KV reads it with
// MSG.GET instead.
func EnsureOAuthTokenBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) error {
	_, err := EnsureStream(ctx, js, jetstream.StreamConfig{
		Name:              KVStream(BucketOAuthTokens),
		Description:       "mcpbus upstream OAuth2 access tokens shared by worker replicas",
		Subjects:          []string{KVSubject(BucketOAuthTokens, ">")},
		MaxMsgsPerSubject: 1,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           jetstream.MemoryStorage,
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        2 * time.Minute,
		Discard:           jetstream.DiscardNew,
		AllowDirect:       false,
	}, p)
	if err != nil {
		return fmt.Errorf("kv bucket %s: %w", BucketOAuthTokens, err)
	}
	return nil
}
