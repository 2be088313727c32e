package ingress

import (
	"sync"
	"testing"
	"time"
)

func newTestStore(t *testing.T) *sessionStore {
	s := newSessionStore(time.Hour)
	t.Cleanup(s.close)
	return s
}

func TestSessionIsBoundToItsCreator(t *testing.T) {
	s := newTestStore(t)
	a := &session{id: newSessionID(), keyID: "key-a", servers: []string{"github"}, version: "2025-06-18"}
	s.add(a)

	if got := s.get(a.id, "key-a"); got != a {
		t.Fatalf("creator's get = %v, want the session", got)
	}
	if got := s.get(a.id, "key-b"); got != nil {
		t.Fatalf("another key got the session %+v", got)
	}
	if got := s.get(a.id, ""); got != nil {
		t.Fatalf("an anonymous caller got the session %+v", got)
	}
	if got := s.get("no-such-session", "key-a"); got != nil {
		t.Fatalf("unknown id returned %+v", got)
	}
	if s.remove(a.id, "key-b") {
		t.Fatal("another key removed the session")
	}
	if s.get(a.id, "key-a") == nil {
		t.Fatal("session gone after a refused remove")
	}
	if !s.remove(a.id, "key-a") {
		t.Fatal("creator could not remove the session")
	}
	if s.get(a.id, "key-a") != nil {
		t.Fatal("session still there after remove")
	}
	if s.remove(a.id, "key-a") {
		t.Fatal("second remove reported success")
	}
}

func TestAnonymousSessionNotSharedWithKeys(t *testing.T) {
	// A session opened without a key (keyID "") is not reachable with one.
	s := newTestStore(t)
	anon := &session{id: newSessionID()}
	s.add(anon)
	if s.get(anon.id, "key-a") != nil {
		t.Fatal("keyed caller got an anonymous session")
	}
	if s.get(anon.id, "") != anon {
		t.Fatal("anonymous creator lost its session")
	}
}

func TestSessionGetRefreshesLastUse(t *testing.T) {
	s := newTestStore(t)
	sess := &session{id: newSessionID(), keyID: "k"}
	s.add(sess)
	s.mu.Lock()
	sess.used = time.Now().Add(-30 * time.Minute)
	s.mu.Unlock()
	if s.get(sess.id, "other") != nil {
		t.Fatal("other key got the session")
	}
	s.mu.Lock()
	stale := time.Since(sess.used) > 29*time.Minute
	s.mu.Unlock()
	if !stale {
		t.Fatal("a refused get refreshed the session's idle timer")
	}
	s.get(sess.id, "k")
	s.mu.Lock()
	defer s.mu.Unlock()
	if time.Since(sess.used) > time.Minute {
		t.Fatalf("get did not refresh last use (%v ago)", time.Since(sess.used))
	}
}

func TestSessionIdleExpiry(t *testing.T) {
	t.Skip("sessionStore.sweep runs on a fixed one-minute ticker with the expiry loop inline, so idle expiry cannot be unit-tested without a >1 minute wait; get/remove semantics and last-use refresh are tested above")
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
				sess := &session{id: newSessionID(), keyID: "k"}
				s.add(sess)
				if s.get(sess.id, "k") != sess {
					t.Error("lost a session")
					return
				}
				if !s.remove(sess.id, "k") {
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
