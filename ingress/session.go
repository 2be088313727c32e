package ingress

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// session is one downstream MCP session: a snapshot of its record that is
// never changed in place (an update stores a new snapshot), plus bookkeeping.
type session struct {
	rec bus.SessionRecord
	// rev is the KV revision rec was read at or written as; written is when
	// that revision was written, which the bucket's TTL counts from.
	rev     uint64
	written time.Time
	// mine: this process wrote rev, so it reports the expiry of that
	// revision (sessionkv.go).
	mine bool
	// used is the last use (unix nanoseconds): the idle clock of the
	// in-memory store.
	used       atomic.Int64
	refreshing atomic.Bool
}

func newSession(env bus.Envelope, version string, caps json.RawMessage) *session {
	return &session{rec: bus.SessionRecord{ID: newSessionID(), KeyID: env.Caller.KeyID, Servers: env.Servers, Version: version,
		Capabilities: caps, IPClass: env.IPClass, Created: time.Now().UTC()}}
}

// clone copies the record (not the bookkeeping) for an update.
func (s *session) clone() *session {
	c := &session{rec: s.rec, rev: s.rev, written: s.written, mine: s.mine}
	c.rec.Servers = slices.Clone(s.rec.Servers)
	c.rec.Subscriptions = slices.Clone(s.rec.Subscriptions)
	c.used.Store(s.used.Load())
	return c
}

func (s *session) subscribed(uri string) bool { return slices.Contains(s.rec.Subscriptions, uri) }

func newSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sessionStore holds the sessions: in this process only, or, with a KV
// bucket (sessionkv.go), in bus.BucketSessions with this map as a local cache
// so that the common request never leaves the process.
type sessionStore struct {
	mu sync.RWMutex
	m  map[string]*session
	// ttl is the idle time after which a session ends.
	ttl time.Duration
	// ended is told about every session that ends, here or (with a bucket)
	// on another replica: the ingress closes its streams and, when publish
	// is set, announces the end on bus.SubjectSessionClosed.
	ended func(id string, publish bool)
	stop  chan struct{}
	once  sync.Once
	log   *slog.Logger

	kv      jetstream.KeyValue // nil: memory only
	refresh time.Duration      // bucket: rewrite a used session's record after this long
	watch   jetstream.KeyWatcher
	now     func() time.Time // the store's clock (time.Now but in tests)
	// unsettled counts new sessions kept here while their record waits to
	// be written (sessionkv.go, settle); warned rate-limits saying so.
	unsettled atomic.Int64
	warned    bus.RateLimited
}

// newSessionStore keeps sessions in this process, ending those idle for ttl.
// ended (nil: nothing) is told about every session that ends; now (nil:
// time.Now) is the store's clock, which a test moves.
func newSessionStore(ttl time.Duration, ended func(id string, publish bool), now func() time.Time) *sessionStore {
	s := &sessionStore{m: map[string]*session{}, ttl: ttl, stop: make(chan struct{}), log: slog.Default(),
		ended: orNoop(ended), now: orNow(now)}
	go s.sweep()
	return s
}

func orNoop(f func(string, bool)) func(string, bool) {
	if f == nil {
		return func(string, bool) {}
	}
	return f
}

// get returns the session if it exists and belongs to keyID (nil otherwise),
// and keeps it alive. An error means the store could not be asked.
func (s *sessionStore) get(ctx context.Context, id, keyID string) (*session, error) {
	sess, err := s.lookup(ctx, id)
	if sess == nil || sess.rec.KeyID != keyID {
		return nil, err
	}
	now := s.now()
	if s.kv == nil {
		sess.used.Store(now.UnixNano())
		return sess, nil
	}
	age := now.Sub(sess.written)
	if age > s.ttl {
		return nil, nil // expired; the bucket's marker will clear the cache
	}
	if age > s.refresh && sess.refreshing.CompareAndSwap(false, true) {
		go s.touch(sess)
	}
	return sess, nil
}

// keepAlive counts as a use of session id (cached here) without a request:
// an open stream keeps its session alive.
func (s *sessionStore) keepAlive(id string) {
	sess := s.cached(id)
	if sess == nil {
		return
	}
	_, _ = s.get(context.Background(), id, sess.rec.KeyID)
}

// lookup returns the session, whoever owns it, or nil.
func (s *sessionStore) lookup(ctx context.Context, id string) (*session, error) {
	if !bus.ValidToken(id) {
		return nil, nil // no session has such an id, and it must not reach a KV subject
	}
	s.mu.RLock()
	sess := s.m[id]
	s.mu.RUnlock()
	if sess == nil && s.kv != nil {
		return s.fetch(ctx, id)
	}
	return sess, nil
}

// cached returns the session from this process's map only (no bus call).
func (s *sessionStore) cached(id string) *session {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.m[id]
}

// countFor is how many sessions of keyID this process knows (with a bucket:
// every replica's, fed by the watch).
func (s *sessionStore) countFor(keyID string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, sess := range s.m {
		if sess.rec.KeyID == keyID {
			n++
		}
	}
	return n
}

// add stores a new session.
func (s *sessionStore) add(ctx context.Context, sess *session) error {
	sess.used.Store(s.now().UnixNano())
	if s.kv != nil {
		if err := s.create(ctx, sess); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.m[sess.rec.ID] = sess
	s.mu.Unlock()
	return nil
}

// remove ends the session if it belongs to keyID, reporting whether it did.
func (s *sessionStore) remove(ctx context.Context, id, keyID string) (bool, error) {
	sess, err := s.lookup(ctx, id)
	if sess == nil || sess.rec.KeyID != keyID {
		return false, err
	}
	if s.kv != nil {
		if err := s.kv.Delete(ctx, id); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	delete(s.m, id)
	s.mu.Unlock()
	s.ended(id, true)
	return true, nil
}

// update applies change to the session's record and stores it. A session
// that ended meanwhile is left ended.
func (s *sessionStore) update(ctx context.Context, id string, change func(*bus.SessionRecord)) error {
	if s.kv != nil {
		return s.updateKV(ctx, id, change)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur := s.m[id]; cur != nil {
		next := cur.clone()
		change(&next.rec)
		s.m[id] = next
	}
	return nil
}

// sweep ends idle sessions (memory) or forgets cached ones past their TTL
// (bucket: the bucket itself expires them and its marker reports it).
func (s *sessionStore) sweep() {
	t := time.NewTicker(min(time.Minute, max(s.ttl/4, 10*time.Millisecond)))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			now := s.now()
			var idle []string
			s.mu.Lock()
			for id, sess := range s.m {
				if s.kv == nil && now.Sub(time.Unix(0, sess.used.Load())) > s.ttl {
					delete(s.m, id)
					idle = append(idle, id)
				} else if s.kv != nil && now.Sub(sess.written) > s.ttl+time.Minute {
					delete(s.m, id)
				}
			}
			s.mu.Unlock()
			for _, id := range idle {
				s.ended(id, true)
			}
		}
	}
}

func (s *sessionStore) close() {
	s.once.Do(func() {
		close(s.stop)
		if s.watch != nil {
			_ = s.watch.Stop()
		}
	})
}

// orNow is now, or time.Now when nil.
func orNow(now func() time.Time) func() time.Time {
	if now == nil {
		return time.Now
	}
	return now
}
