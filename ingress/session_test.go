package ingress

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

var bg = context.Background()

func newTestStore(t *testing.T) *sessionStore {
	s := newSessionStore(time.Hour, nil, nil)
	t.Cleanup(s.close)
	return s
}

// testClock is a clock the test moves: base (zero: time.Now()) plus offset.
type testClock struct {
	mu     sync.Mutex
	base   time.Time
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.base.IsZero() {
		return time.Now().Add(c.offset)
	}
	return c.base.Add(c.offset)
}

func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

func mustGet(t *testing.T, s *sessionStore, id, key string) *session {
	t.Helper()
	sess, err := s.get(bg, id, key)
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func TestSessionIsBoundToItsCreator(t *testing.T) {
	s := newTestStore(t)
	a := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "key-a"}, Servers: []string{"github"}}, "2025-06-18", nil)
	if err := s.add(bg, a); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, a.rec.ID, "key-a"); got != a {
		t.Fatalf("creator's get = %v, want the session", got)
	}
	if got := mustGet(t, s, a.rec.ID, "key-b"); got != nil {
		t.Fatalf("another key got the session %+v", got.rec)
	}
	if got := mustGet(t, s, a.rec.ID, ""); got != nil {
		t.Fatalf("an anonymous caller got the session %+v", got.rec)
	}
	if got := mustGet(t, s, "no-such-session", "key-a"); got != nil {
		t.Fatalf("unknown id returned %+v", got.rec)
	}
	if ok, _ := s.remove(bg, a.rec.ID, "key-b"); ok {
		t.Fatal("another key removed the session")
	}
	if mustGet(t, s, a.rec.ID, "key-a") == nil {
		t.Fatal("session gone after a refused remove")
	}
	if ok, _ := s.remove(bg, a.rec.ID, "key-a"); !ok {
		t.Fatal("creator could not remove the session")
	}
	if mustGet(t, s, a.rec.ID, "key-a") != nil {
		t.Fatal("session still there after remove")
	}
	if ok, _ := s.remove(bg, a.rec.ID, "key-a"); ok {
		t.Fatal("second remove reported success")
	}
}

func TestAnonymousSessionNotSharedWithKeys(t *testing.T) {
	// A session opened without a key (keyID "") is not reachable with one.
	s := newTestStore(t)
	anon := newSession(bus.Envelope{Caller: bus.Identity{KeyID: ""}}, "2025-06-18", nil)
	_ = s.add(bg, anon)
	if mustGet(t, s, anon.rec.ID, "key-a") != nil {
		t.Fatal("keyed caller got an anonymous session")
	}
	if mustGet(t, s, anon.rec.ID, "") != anon {
		t.Fatal("anonymous creator lost its session")
	}
}

// endings records the sessions a store reported ended.
type endings struct {
	mu  sync.Mutex
	got map[string]bool // id -> publish
}

func (e *endings) ended(id string, publish bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.got == nil {
		e.got = map[string]bool{}
	}
	e.got[id] = e.got[id] || publish
}

// describeSession says what a test's condition looks at in a cached session.
func describeSession(c *session) string {
	if c == nil {
		return "no session"
	}
	return fmt.Sprintf("revision %d of key %q, subscriptions %v, log level %q", c.rev, c.rec.KeyID, c.rec.Subscriptions, c.rec.LogLevel)
}

func (e *endings) of(id string) (ended, published bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.got[id]
	return ok, p
}

// In memory, a session idle for the TTL ends and its end is announced; one
// in use stays. The store's clock is the test's, moved 50 ms at a time, the
// busy session used after each step. After each move the test waits for a
// sweep (the sweeper runs on its own ticker): it adds a canary session last
// used long ago and waits until it ends. So every step is judged by a sweep,
// whenever it runs: the busy session (idle 50 ms) stays, the idle one stays
// until its 150 ms have passed and ends at the first sweep after.
func TestSessionIdleExpiry(t *testing.T) {
	clock := &testClock{base: time.Unix(1_000_000, 0)}
	var e endings
	ttl := 150 * time.Millisecond
	s := newSessionStore(ttl, e.ended, clock.now)
	t.Cleanup(s.close)
	idle := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "k"}}, "2025-06-18", nil)
	busy := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "k"}}, "2025-06-18", nil)
	_ = s.add(bg, idle)
	_ = s.add(bg, busy)
	for i := 1; i <= 8; i++ {
		clock.add(50 * time.Millisecond)
		canary := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "k"}}, "2025-06-18", nil)
		_ = s.add(bg, canary)
		canary.used.Store(clock.now().Add(-time.Hour).UnixNano())
		bustest.Eventually(t, 30*time.Second, "a sweep", func() error {
			if ended, _ := e.of(canary.rec.ID); !ended {
				return errors.New("the canary session has not ended")
			}
			return nil
		})
		if s.cached(busy.rec.ID) == nil {
			t.Fatalf("step %d: a session used 50 ms ago (of the store's clock) was swept, with a TTL of %s", i, ttl)
		}
		idleFor := time.Duration(i) * 50 * time.Millisecond
		if ended, _ := e.of(idle.rec.ID); ended != (idleFor > ttl) {
			t.Fatalf("step %d: the session idle for %s (TTL %s): ended %v", i, idleFor, ttl, ended)
		}
		if mustGet(t, s, busy.rec.ID, "k") == nil { // a use
			t.Fatalf("step %d: a session in use expired", i)
		}
	}
	if mustGet(t, s, idle.rec.ID, "k") != nil {
		t.Fatal("an idle session outlived its TTL")
	}
	if ended, published := e.of(idle.rec.ID); !ended || !published {
		t.Fatalf("the idle session's end was not announced (ended %v, published %v)", ended, published)
	}
	if ended, _ := e.of(busy.rec.ID); ended {
		t.Fatal("the busy session was reported ended")
	}
}

func TestSessionIDsAreUniqueHex(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		id := newSessionID()
		if len(id) != 32 {
			t.Fatalf("id %q is not 128 bits of hex", id)
		}
		for _, c := range id {
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				t.Fatalf("id %q is not lower-case hex", id)
			}
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestSessionStoreConcurrentUse(t *testing.T) {
	s := newTestStore(t)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				sess := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "k"}}, "2025-06-18", nil)
				_ = s.add(bg, sess)
				if got, _ := s.get(bg, sess.rec.ID, "k"); got != sess {
					t.Error("lost a session")
					return
				}
				_ = s.update(bg, sess.rec.ID, func(r *bus.SessionRecord) { r.LogLevel = "debug" })
				if ok, _ := s.remove(bg, sess.rec.ID, "k"); !ok {
					t.Error("remove failed")
					return
				}
			}
		}()
	}
	wg.Wait()
	s.close()
	s.close() // closing twice is safe
}

// kvStore opens the sessions bucket on its own connection to ns, as one
// ingress process would.
func kvStore(t *testing.T, ns *server.Server, ttl time.Duration, e *endings, now func() time.Time) *sessionStore {
	t.Helper()
	js, err := jetstream.New(bustest.Conn(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	var ended func(string, bool)
	if e != nil {
		ended = e.ended
	}
	s, err := openSessionStore(bg, js, bus.StatePolicy{}, ttl, slog.New(slog.NewTextHandler(io.Discard, nil)), ended, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

// Two processes share sessions through the bucket: one creates, the other
// serves it, changes it and ends it, and the first hears of both.
func TestSessionsSharedThroughKV(t *testing.T) {
	ns := bustest.Server(t)
	var ea, eb endings
	a := kvStore(t, ns, time.Hour, &ea, nil)
	b := kvStore(t, ns, time.Hour, &eb, nil)

	sess := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "key-a"}, Servers: []string{"github"}}, "2025-11-25", []byte(`{"sampling":{}}`))
	if err := a.add(bg, sess); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, b, sess.rec.ID, "key-a")
	if got == nil || got.rec.Version != "2025-11-25" || string(got.rec.Capabilities) != `{"sampling":{}}` || got.rec.Servers[0] != "github" {
		t.Fatalf("the other process read %+v", got)
	}
	if mustGet(t, b, sess.rec.ID, "key-b") != nil {
		t.Fatal("another key got the session on the other process")
	}
	if err := b.update(bg, sess.rec.ID, func(r *bus.SessionRecord) {
		r.Subscriptions = append(r.Subscriptions, "file:///a")
		r.LogLevel = "warning"
	}); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "the change reaches the first process", func() error {
		if c := a.cached(sess.rec.ID); c == nil || !c.subscribed("file:///a") || c.rec.LogLevel != "warning" {
			return fmt.Errorf("it holds %s; want file:///a subscribed at level warning", describeSession(c))
		}
		return nil
	})
	// A change made with a stale revision is applied on top of the newer one.
	if err := a.update(bg, sess.rec.ID, func(r *bus.SessionRecord) { r.LogLevel = "debug" }); err != nil {
		t.Fatal(err)
	}
	if c := mustGet(t, b, sess.rec.ID, "key-a"); c == nil {
		t.Fatal("session lost")
	}
	bustest.Eventually(t, 30*time.Second, "both changes kept", func() error {
		if c := b.cached(sess.rec.ID); c == nil || !c.subscribed("file:///a") || c.rec.LogLevel != "debug" {
			return fmt.Errorf("it holds %s; want file:///a subscribed at level debug", describeSession(c))
		}
		return nil
	})

	if ok, err := b.remove(bg, sess.rec.ID, "key-a"); !ok || err != nil {
		t.Fatalf("remove on the other process: %v %v", ok, err)
	}
	if _, published := eb.of(sess.rec.ID); !published {
		t.Fatal("the process that ended the session did not announce it")
	}
	bustest.Eventually(t, 30*time.Second, "the first process hears of the end", func() error {
		if ended, _ := ea.of(sess.rec.ID); !ended {
			return errors.New("it has not heard")
		}
		return nil
	})
	if _, published := ea.of(sess.rec.ID); published {
		t.Error("the end was announced twice")
	}
	if mustGet(t, a, sess.rec.ID, "key-a") != nil {
		t.Fatal("the first process still serves an ended session")
	}
}

// A session in use has its TTL renewed by a rewrite once its record is
// ttl/12 old, not per request. The stores' clock is the test's (the real one
// plus an offset it sets); the bucket's TTL, an hour, never passes here.
func TestSessionKVRenewedByUse(t *testing.T) {
	clock := &testClock{}
	ns := bustest.Server(t)
	ttl := time.Hour // a rewrite after 5 minutes of the stores' clock
	a := kvStore(t, ns, ttl, nil, clock.now)
	b := kvStore(t, ns, ttl, nil, clock.now)
	busy := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "k"}}, "2025-06-18", nil)
	_ = a.add(bg, busy)
	rev := busy.rev
	// settled returns b's copy once no rewrite it started is under way.
	settled := func() *session {
		t.Helper()
		var c *session
		bustest.Eventually(t, 30*time.Second, "no rewrite under way", func() error {
			c = b.cached(busy.rec.ID)
			if c == nil {
				return errors.New("the session is not cached")
			}
			if c.refreshing.Load() {
				return fmt.Errorf("a rewrite of revision %d is under way", c.rev)
			}
			return nil
		})
		return c
	}
	for range 20 {
		if mustGet(t, b, busy.rec.ID, "k") == nil {
			t.Fatal("a session in use is not served")
		}
	}
	if c := settled(); c.rev != rev {
		t.Fatalf("20 requests within ttl/12 of the write rewrote the record (revision %d, was %d)", c.rev, rev)
	}
	clock.add(ttl/sessionRefreshDivisor + time.Second)
	if mustGet(t, b, busy.rec.ID, "k") == nil {
		t.Fatal("a session in use is not served")
	}
	bustest.Eventually(t, 30*time.Second, "a request past ttl/12 rewrites the record", func() error {
		if c := b.cached(busy.rec.ID); c == nil || c.rev <= rev {
			return fmt.Errorf("it holds %s; want a revision past %d", describeSession(c), rev)
		}
		return nil
	})
	clock.add(-(ttl/sessionRefreshDivisor + time.Second)) // the rewrite is the latest write now
	renewed := settled().rev
	for range 20 {
		if mustGet(t, b, busy.rec.ID, "k") == nil {
			t.Fatal("a renewed session is not served")
		}
	}
	if c := settled(); c.rev != renewed || renewed != rev+1 {
		t.Fatalf("revisions %d -> %d -> %d: want one rewrite, not one per request", rev, renewed, c.rev)
	}
	bustest.Eventually(t, 30*time.Second, "the other process follows the rewrite", func() error {
		if c := a.cached(busy.rec.ID); c == nil || c.rev != renewed {
			return fmt.Errorf("it holds %s; want revision %d", describeSession(c), renewed)
		}
		return nil
	})
}

// An idle session expires in the bucket, and the process that wrote it last
// announces the expiry; the other only hears of it. (The bucket's clock is
// NATS's own: the wait is bounded only to catch an expiry that never comes.)
func TestSessionKVIdleExpiry(t *testing.T) {
	ns := bustest.Server(t)
	var ea, eb endings
	ttl := time.Second
	a := kvStore(t, ns, ttl, &ea, nil)
	b := kvStore(t, ns, ttl, &eb, nil)
	idle := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "k"}}, "2025-06-18", nil)
	_ = a.add(bg, idle)
	bustest.Eventually(t, 30*time.Second, "the idle session expires and both processes hear of it", func() error {
		x, _ := ea.of(idle.rec.ID)
		y, _ := eb.of(idle.rec.ID)
		if !x || !y {
			return fmt.Errorf("the writer heard: %v, the other: %v", x, y)
		}
		return nil
	})
	if _, published := ea.of(idle.rec.ID); !published {
		t.Error("the process that wrote the session did not announce its expiry")
	}
	if _, published := eb.of(idle.rec.ID); published {
		t.Error("a process that did not write the session announced its expiry")
	}
	if mustGet(t, b, idle.rec.ID, "k") != nil || mustGet(t, a, idle.rec.ID, "k") != nil {
		t.Fatal("an expired session is still served")
	}
}

// A new session while the bucket cannot take it (here its stream is gone; in
// a cluster, it has no leader while a NATS node is lost) works at once on the
// replica that opened it, and is written when the bucket answers again, so
// the other replicas serve it from then on.
func TestNewSessionWhileTheBucketIsUnavailable(t *testing.T) {
	ns := bustest.Server(t)
	a := kvStore(t, ns, time.Hour, nil, nil)
	js, err := jetstream.New(bustest.Conn(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(bg, "KV_"+bus.BucketSessions); err != nil {
		t.Fatal(err)
	}
	sess := newSession(bus.Envelope{Caller: bus.Identity{KeyID: "key-a"}}, "2025-11-25", nil)
	if err := a.add(bg, sess); err != nil {
		t.Fatalf("a new session while the bucket is unavailable: %v", err)
	}
	if mustGet(t, a, sess.rec.ID, "key-a") == nil {
		t.Fatal("the replica that opened the session does not serve it")
	}
	b := kvStore(t, ns, time.Hour, nil, nil) // makes the bucket again
	bustest.Eventually(t, 30*time.Second, "the session reaches the bucket and the other replica", func() error {
		got, err := b.lookup(bg, sess.rec.ID)
		if err != nil {
			return err
		}
		if got == nil || got.rec.KeyID != "key-a" {
			return fmt.Errorf("the other replica finds %s; want the session of key-a", describeSession(got))
		}
		// The opening replica notes the write's revision once its Put
		// returns, which may be after the other replica already reads it.
		if c := a.cached(sess.rec.ID); c == nil || c.rev == 0 || !c.mine {
			return fmt.Errorf("the opening replica's copy after the write: %+v", c)
		}
		return nil
	})
}
