package ingress

import (
	"encoding/json"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// A stand-in auth that counts verify requests and answers one identity.
type countingAuth struct {
	n  atomic.Int64
	id atomic.Pointer[bus.Identity]
}

func startCountingAuth(t *testing.T, nc *nats.Conn, id bus.Identity) *countingAuth {
	t.Helper()
	a := &countingAuth{}
	a.id.Store(&id)
	sub, err := nc.Subscribe(bus.SubjectAuthVerify, func(m *nats.Msg) {
		a.n.Add(1)
		b, _ := json.Marshal(a.id.Load())
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return a
}

// The ingress reuses auth's answer for a key (no bus round trip per call)
// until auth announces any change, and never for a rate-limited key or past
// the key's expiry.
func TestVerifyAnswersAreReusedUntilAuthChanges(t *testing.T) {
	ns := bustest.Server(t)
	nc := bustest.Conn(t, ns)
	a := startCountingAuth(t, nc, bus.Identity{KeyID: "k1", Alias: "alice", Permissions: bus.Permissions{AllServers: true}})
	h := &harness{t: t, ns: ns}
	g, url := h.startIngress(Options{})
	clock := &testClock{base: time.Now()} // the cache's clock: only the test moves it
	g.verified.now = clock.now
	verify := func() {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, url+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer sk-cached")
		if _, e := g.verify(req); e != nil {
			t.Fatal(e)
		}
	}
	for range 5 {
		verify()
	}
	if n := a.n.Load(); n != 1 {
		t.Fatalf("5 requests with one key asked auth %d times, want 1", n)
	}
	a.id.Store(&bus.Identity{KeyID: "k1", Alias: "alice", Permissions: bus.Permissions{Servers: []string{"only"}}})
	if err := nc.Publish(bus.SubjectAuthChanged, nil); err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	bustest.Eventually(t, 30*time.Second, "a request after the change asks auth", func() error {
		verify()
		if a.n.Load() == 1 {
			return errors.New("auth asked once: the ingress still answers from its cache")
		}
		return nil
	})
	if a.n.Load() != 2 {
		t.Fatal("after auth announced a change the ingress kept answering from its cache")
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/mcp", nil)
	req.Header.Set("Authorization", "Bearer sk-cached")
	if id, _ := g.verify(req); len(id.Permissions.Servers) != 1 {
		t.Fatalf("after the change the identity is %+v, want the new permissions", id)
	}

	// A metered key: every request must reach auth, which counts it. Once
	// the ingress has dropped its cached answer (it answers k2), not before.
	a.id.Store(&bus.Identity{KeyID: "k2", RateLimited: true})
	nc.Publish(bus.SubjectAuthChanged, nil)
	_ = nc.Flush()
	bustest.Eventually(t, 30*time.Second, "the ingress drops its cached answer", func() error {
		req, _ := http.NewRequest(http.MethodPost, url+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer sk-cached")
		id, _ := g.verify(req)
		return bustest.Want("key id verified", id.KeyID, "k2")
	})
	before := a.n.Load()
	for range 3 {
		verify()
	}
	if n := a.n.Load() - before; n != 3 {
		t.Fatalf("3 requests with a rate-limited key asked auth %d times, want 3", n)
	}

	// An expiring key: not reused past its expiry. (Nothing is cached for
	// the metered key, so the first request asks auth.)
	soon := clock.now().Add(time.Second) // sooner than bus.VerifyCacheTTL
	a.id.Store(&bus.Identity{KeyID: "k3", Expires: &soon})
	verify()
	before = a.n.Load()
	verify()
	if a.n.Load() != before {
		t.Fatal("an answer was not reused before the key's expiry")
	}
	clock.add(2 * time.Second)
	verify()
	if a.n.Load() == before {
		t.Fatal("an answer was reused past the key's expiry")
	}
}
