package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Following a KV bucket without a JetStream consumer.
//
// A consumer's deliver subject is not checked against its creator's
// permissions: a user allowed to create consumers can make the server
// publish a stream's messages to any subject (mint a key by delivering to
// auth.key.generate, forge a revocation, reach a worker). So the roles that
// must not be trusted that far (router, workers, readers: bus/natsauth.go)
// follow a bucket the way any client reads a subject: a plain subscription to
// $KV.<bucket>.<key> announces each write as it is published, a get fetches
// the stored entry with its revision, and the whole servers bucket loads at
// the start with one batched direct get. The servers bucket, which only the registry
// writes, is read with direct gets (the key is in the subject, so a worker's
// user may read its own servers' records alone: natsauth.go); a bucket an
// untrusted role writes (the OAuth2 tokens) with MSG.GET, whose answer no
// reply subject can turn into a forged record or request (msgget.go). Entries are
// applied in revision order per key, and a write announced during the load
// is fetched again after it, so nothing is missed or applied out of order.

// KVEntry is one key's latest value in a followed bucket.
type KVEntry struct {
	Key      string
	Value    []byte
	Revision uint64
	// Created is when this revision was stored (the server's clock).
	Created time.Time
	// Deleted: the key was deleted or purged (Value is empty).
	Deleted bool
}

// KVFollower follows a bucket; Stop ends it.
type KVFollower struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// Stop ends the following; apply is not called after it returns.
func (f *KVFollower) Stop() {
	if f == nil {
		return
	}
	f.cancel()
	<-f.done
}

// FollowKV loads bucket (only keys, when given: each must be a token) and
// calls apply for every entry, then for every later change, from one
// goroutine, until ctx ends or Stop. It returns once the start is loaded.
func FollowKV(ctx context.Context, nc *nats.Conn, bucket string, keys []string, apply func(KVEntry)) (*KVFollower, error) {
	if len(keys) == 0 && !directReadable(bucket) {
		// A whole bucket loads with one batched direct get, which only a
		// bucket trusted roles alone write may answer (msgget.go).
		return nil, fmt.Errorf("follow %s: only named keys of this bucket can be followed", bucket)
	}
	changed := make(changes, 1024)
	subs, err := changed.subscribe(nc, bucket, keys)
	if err != nil {
		return nil, err
	}
	fctx, cancel := context.WithCancel(ctx)
	r := &kvLoader{nc: nc, bucket: bucket, direct: directReadable(bucket), keys: keys, revs: map[string]uint64{}, apply: apply}
	if err := r.loadStart(fctx); err != nil {
		cancel()
		unsubscribeAll(subs)
		return nil, err
	}
	f := &KVFollower{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(f.done)
		defer unsubscribeAll(subs)
		r.follow(fctx, changed)
	}()
	return f, nil
}

// changes queues the keys to read again, from the subscriptions and the
// retries, for the follow loop.
type changes chan change

// push queues c; when the loop is behind, it queues a reload of everything
// instead.
func (q changes) push(c change) {
	select {
	case q <- c:
	default: // the loop is behind: it reloads everything
		select {
		case q <- change{}:
		default:
		}
	}
}

// subscribe subscribes to the writes of bucket (only keys, when given),
// each pushing its key, and flushes so the server has them before the load.
func (q changes) subscribe(nc *nats.Conn, bucket string, keys []string) (subs []*nats.Subscription, err error) {
	for _, k := range keys {
		if !validKey(k) {
			return nil, fmt.Errorf("follow %s: %q is not a key", bucket, Shorten(k, 64))
		}
	}
	defer func() { // a failure leaves no subscription behind
		if err != nil {
			unsubscribeAll(subs)
			subs = nil
		}
	}()
	prefix := KVPrefix(bucket)
	subject := prefix + ">"
	handler := func(m *nats.Msg) { q.push(change{key: strings.TrimPrefix(m.Subject, prefix)}) }
	if len(keys) == 0 {
		sub, err := nc.Subscribe(subject, handler)
		if err != nil {
			return nil, fmt.Errorf("follow %s: %w", bucket, err)
		}
		subs = append(subs, sub)
	} else {
		for _, k := range keys {
			sub, err := nc.Subscribe(prefix+k, handler)
			if err != nil {
				return nil, fmt.Errorf("follow %s: %w", bucket, err)
			}
			subs = append(subs, sub)
		}
	}
	if err := nc.Flush(); err != nil {
		return nil, fmt.Errorf("follow %s: %w", bucket, err)
	}
	return subs, nil
}

func unsubscribeAll(subs []*nats.Subscription) {
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
}

// loadStart is the first loadAll. A bucket its owner has not made yet (the
// registry starting after a worker) answers nothing: it waits for it while
// ctx lasts.
func (r *kvLoader) loadStart(ctx context.Context) error {
	err := r.loadAll(ctx)
	for streamMissing(err) {
		select {
		case <-ctx.Done():
			err = fmt.Errorf("bucket %s is not there (is the service that makes it running?): %w", r.bucket, ctx.Err())
		case <-time.After(100 * time.Millisecond):
			err = r.loadAll(ctx)
		}
	}
	return err
}

// follow reads again every key q names until ctx ends.
func (r *kvLoader) follow(ctx context.Context, q changes) {
	for {
		select {
		case <-ctx.Done():
			return
		case c := <-q:
			r.reread(ctx, q, c)
		}
	}
}

// reread reads again the key c names (every key, for the empty key), and
// queues it again after a wait when the read failed or found nothing newer.
func (r *kvLoader) reread(ctx context.Context, q changes, c change) {
	if c.key == "" {
		if err := r.loadAll(ctx); err != nil && ctx.Err() == nil {
			time.AfterFunc(time.Second, func() { q.push(change{}) })
		}
		return
	}
	advanced, err := r.load(ctx, c.key)
	if ctx.Err() != nil {
		return
	}
	// A subscriber may hear of a write before the stream has
	// stored it: a read that finds no newer revision is tried
	// again, a few times (a write the stream refused, such as a
	// failed compare-and-set, never advances it).
	if err != nil || !advanced && c.attempt < len(refetchAfter) {
		next := change{key: c.key, attempt: c.attempt + 1}
		delay := time.Second
		if c.attempt < len(refetchAfter) {
			delay = refetchAfter[c.attempt]
		}
		time.AfterFunc(delay, func() { q.push(next) })
	}
}

// change is a key to read again (the empty key: every key), and how many
// times it was read without finding a newer revision.
type change struct {
	key     string
	attempt int
}

// refetchAfter are the waits before reading a key again that had not
// advanced yet.
var refetchAfter = []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 100 * time.Millisecond, 500 * time.Millisecond}

// directReadable reports whether bucket may be read with direct gets: only
// trusted roles write it (msgget.go): the registry, the servers and the
// agents.
func directReadable(bucket string) bool { return bucket == BucketServers || bucket == BucketAgents }

type kvLoader struct {
	nc     *nats.Conn
	bucket string
	direct bool // directReadable(bucket)
	keys   []string
	mu     sync.Mutex
	revs   map[string]uint64
	apply  func(KVEntry)
}

// loadAll reads every key's latest entry: one get per key when following
// named keys, else one batched direct get (loadDirect).
func (r *kvLoader) loadAll(ctx context.Context) error {
	if len(r.keys) > 0 {
		for _, k := range r.keys {
			if _, err := r.load(ctx, k); err != nil {
				return err
			}
		}
		return nil
	}
	return r.loadDirect(ctx)
}

// load reads one key's latest entry; advanced reports that it was newer
// than what was applied before.
func (r *kvLoader) load(ctx context.Context, key string) (advanced bool, err error) {
	get := KVGet
	if r.direct {
		get = kvDirectGet
	}
	e, ok, err := get(ctx, r.nc, r.bucket, key)
	if err != nil {
		return false, fmt.Errorf("read %s %s: %w", r.bucket, key, err)
	}
	if !ok { // gone (purged): a deletion at no known revision
		r.mu.Lock()
		_, known := r.revs[key]
		delete(r.revs, key)
		r.mu.Unlock()
		if known {
			r.apply(KVEntry{Key: key, Deleted: true})
		}
		return known, nil
	}
	return r.offer(e), nil
}

// offer applies a stored entry unless an equal or newer revision of its key
// was applied already, and reports whether it did.
func (r *kvLoader) offer(e KVEntry) bool {
	if e.Key == "" || e.Revision == 0 {
		return false
	}
	r.mu.Lock()
	if e.Revision <= r.revs[e.Key] {
		r.mu.Unlock()
		return false
	}
	r.revs[e.Key] = e.Revision
	r.mu.Unlock()
	r.apply(e)
	return true
}

// validKey reports whether k can be followed: dot-separated tokens.
func validKey(k string) bool {
	if len(k) > 2*MaxTokenLen {
		return false
	}
	for _, t := range strings.Split(k, ".") {
		if !ValidToken(t) {
			return false
		}
	}
	return true
}

// loadDirect loads the whole bucket with one batched direct get (multi_last).
func (r *kvLoader) loadDirect(ctx context.Context) error {
	inbox := r.nc.NewRespInbox()
	sub, err := r.nc.SubscribeSync(inbox)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	req, _ := json.Marshal(map[string]any{"multi_last": []string{KVSubject(r.bucket, ">")}})
	if err := r.nc.PublishRequest(jsDirectGet(KVStream(r.bucket)), inbox, req); err != nil {
		return err
	}
	for {
		gctx, cancel := context.WithTimeout(ctx, getTimeout)
		m, err := sub.NextMsgWithContext(gctx)
		cancel()
		if err != nil {
			return fmt.Errorf("load %s: %w", r.bucket, err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
			r.offer(directEntry(r.bucket, m))
		case "204", "404": // end of the batch; an empty bucket
			return nil
		default:
			return fmt.Errorf("load %s: status %s %s", r.bucket, status, m.Header.Get("Description"))
		}
	}
}

// kvDirectGet is KVGet with a direct get.
func kvDirectGet(ctx context.Context, nc *nats.Conn, bucket, key string) (KVEntry, bool, error) {
	gctx, cancel := context.WithTimeout(ctx, getTimeout)
	defer cancel()
	m, err := nc.RequestWithContext(gctx, jsDirectGetLast(KVStream(bucket), KVSubject(bucket, key)), nil)
	if err != nil {
		return KVEntry{}, false, err
	}
	switch status := m.Header.Get("Status"); status {
	case "":
		return directEntry(bucket, m), true, nil
	case "404":
		return KVEntry{}, false, nil
	default:
		return KVEntry{}, false, fmt.Errorf("status %s %s", status, m.Header.Get("Description"))
	}
}

// directEntry is a direct get's answer as an entry.
func directEntry(bucket string, m *nats.Msg) KVEntry {
	rev, _ := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
	created, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
	op := m.Header.Get("KV-Operation")
	return KVEntry{Key: strings.TrimPrefix(m.Header.Get("Nats-Subject"), KVPrefix(bucket)), Value: m.Data, Revision: rev,
		Created: created, Deleted: op == "DEL" || op == "PURGE"}
}
