package toolworkers

// Lists shared across a server's replicas (bus/lists_bucket.go): the first
// page of a list the upstream says is fresh for a while (ttlMs, MCP
// 2026-07-28), as fetched on the shared link, is put in bus.BucketLists, and
// a replica that has no such list of its own reads it there before asking
// the upstream. Only the stable worker's shared link takes part: a canary's
// upstream is another server, and a credential link's lists are what its
// caller's credentials see. The replica that hears the upstream's
// list_changed purges the key before anyone is told, so the change still
// reaches every replica at once.

import (
	"context"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// sharedListsRetry: a bucket that could not be opened is not asked for again
// before this.
const sharedListsRetry = time.Minute

type sharedLists struct {
	server string
	lazyKV
}

// lazyKV is a bucket a worker opens on first use (again after
// sharedListsRetry if that failed; the registry makes it).
type lazyKV struct {
	js   jetstream.JetStream // nil: no JetStream
	name string

	mu       sync.Mutex
	kv       jetstream.KeyValue
	failedAt time.Time
}

// bucket opens the bucket once; nil when it cannot be.
func (b *lazyKV) bucket(ctx context.Context) jetstream.KeyValue {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.kv != nil || b.js == nil || time.Since(b.failedAt) < sharedListsRetry {
		return b.kv
	}
	kv, err := b.js.KeyValue(ctx, b.name)
	if err != nil {
		b.failedAt = time.Now()
		return nil
	}
	b.kv = kv
	return kv
}

// sharedCall wraps call, the upstream fetch of the first page of list
// method on link l, with the shared bucket: a fresh entry answers instead
// of the upstream (and *shared says so), and an upstream result with a
// positive ttlMs is put there for the other replicas.
func (w *Worker) sharedCall(ctx context.Context, l *link, method, cursorKey string, shared *bool, call func() (*bus.Message, error)) func() (*bus.Message, error) {
	key := bus.ListKey(w.up.Name, method)
	if l != w.shared || w.variantLabel() != variantStable || w.lists.js == nil || key == "" || cursorKey != method+"\x00" {
		return call
	}
	return func() (*bus.Message, error) {
		if kv := w.lists.bucket(ctx); kv != nil {
			if e, err := kv.Get(ctx, key); err == nil {
				if result, ok := bus.ReadListEntry(e.Value(), time.Now()); ok {
					*shared = true
					return &bus.Message{JSONRPC: "2.0", Result: result}, nil // the answer takes the request's id
				}
			}
		}
		msg, err := call()
		if err != nil || msg == nil || len(msg.Error) > 0 {
			return msg, err
		}
		if ttl, ok := bus.CacheTTL(msg.Result); ok {
			if v, ok := bus.NewListEntry(msg.Result, ttl, time.Now()); ok {
				if kv := w.lists.bucket(ctx); kv != nil {
					if _, err := kv.Put(ctx, key, v); err != nil {
						w.log.Debug("could not share a list with the other replicas", "method", method, "err", err)
					}
				}
			}
		}
		return msg, nil
	}
}

// sharedFresh reports whether the lists bucket holds a fresh page for key.
func (w *Worker) sharedFresh(ctx context.Context, key string) bool {
	kv := w.lists.bucket(ctx)
	if kv == nil {
		return false
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		return false
	}
	_, ok := bus.ReadListEntry(e.Value(), time.Now())
	return ok
}

// purgeShared drops the shared entries of methods, whose upstream list
// changed, before anyone is told of the change.
func (w *Worker) purgeShared(methods []string) {
	if w.lists.js == nil || w.variantLabel() != variantStable {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv := w.lists.bucket(ctx)
	if kv == nil {
		return
	}
	for _, m := range methods {
		if key := bus.ListKey(w.up.Name, m); key != "" {
			if err := kv.Purge(ctx, key); err != nil {
				w.log.Info("could not drop a changed list the replicas share; it ends with its ttlMs", "method", m, "err", err)
			}
		}
	}
}
