package toolworkers

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func (u *relayUpstream) subCounts() (subs, unsubs int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.subs), len(u.unsubs)
}

// On the shared session the upstream subscription is made for the first
// session that subscribes to a URI and removed after the last one leaves; a
// session subscribing twice counts once. Updates go to the server's notify
// subject (the ingress delivers them to the subscribed sessions).
func TestSubscribeRefcountOnSharedSession(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	a, b := caller("sA", "k1", ""), caller("sB", "k2", "")
	uri := `{"uri":"test://r1"}`
	step := func(who bus.Envelope, method string, wantSubs, wantUnsubs int) {
		t.Helper()
		r := e.request(t, who, method, uri, 1)
		if r.gwErr != nil || r.rpcErr != nil || string(r.result) != "{}" {
			t.Fatalf("%s by %s: %s %v", method, who.Session, r.raw, r.gwErr)
		}
		if s, u := e.up.subCounts(); s != wantSubs || u != wantUnsubs {
			t.Fatalf("after %s by %s the upstream got %d subscribes, %d unsubscribes; want %d, %d", method, who.Session, s, u, wantSubs, wantUnsubs)
		}
	}
	step(a, "resources/subscribe", 1, 0)
	step(b, "resources/subscribe", 1, 0)
	step(a, "resources/subscribe", 1, 0)
	step(a, "resources/unsubscribe", 1, 0)
	step(a, "resources/unsubscribe", 1, 0) // not subscribed any more: nothing to undo

	notes := e.subscribeChan(t, bus.NotifySubject(relayServer))
	e.openGETStream(t, a)
	if err := e.up.srv.ResourceUpdated(t.Context(), &mcp.ResourceUpdatedNotificationParams{URI: "test://r1"}); err != nil {
		t.Fatal(err)
	}
	m, err := recv(notes, 5*time.Second)
	if err != nil {
		t.Fatal("resources/updated did not reach the notify subject")
	}
	var n bus.Message
	json.Unmarshal(m.Data, &n)
	if n.Method != "notifications/resources/updated" || string(n.Params) != `{"uri":"test://r1"}` {
		t.Fatalf("notify subject got %s", m.Data)
	}

	step(b, "resources/unsubscribe", 1, 1)
	step(b, "resources/subscribe", 2, 1)
	// The session ends: its subscription goes, and with it the upstream's.
	if err := e.nc.Publish(bus.SubjectSessionClosed, []byte("sB")); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "the ended session's subscription is removed upstream", func() error {
		_, u := e.up.subCounts()
		return bustest.Want("unsubscribes upstream", u, 2)
	})
}

// When the upstream forgets the session (a restart), the next session is
// subscribed again to what the old one was, and given the log level again.
func TestSubscriptionsRestoredOnNewSession(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	a := caller("sA", "k1", "")
	if r := e.request(t, a, "resources/subscribe", `{"uri":"test://r1"}`, 1); r.rpcErr != nil || r.gwErr != nil {
		t.Fatalf("subscribe: %s", r.raw)
	}
	e.request(t, a, "logging/setLevel", `{"level":"info"}`, 2)
	e.openGETStream(t, a)
	sid := e.endUpstreamSession(t, "resources/subscribe")
	e.toolText(t, a, "echo") // opens a new session
	bustest.Eventually(t, 30*time.Second, "the new session is subscribed again", func() error {
		s, _ := e.up.subCounts()
		if l := e.up.count("logging/setLevel"); s != 2 || l != 2 {
			return fmt.Errorf("%d subscribes and %d setLevel upstream, want 2 each", s, l)
		}
		return nil
	})
	if newSid := e.up.requests("resources/subscribe")[1].header.Get("Mcp-Session-Id"); newSid == sid || newSid == "" {
		t.Fatalf("re-subscribed in session %q (old %q)", newSid, sid)
	}
}

// A subscriptions/listen's lease (bus/era_lease.go) holds its resource
// subscriptions like a session: renewals count once, and a lease nobody
// renews any more (its ingress died) is dropped, unsubscribing upstream,
// with no close ever published. One released by its ingress goes at once.
func TestListenLeaseExpiresUnlessRenewed(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	setTTL := func(d time.Duration) {
		e.w.leases.mu.Lock()
		e.w.leases.ttl = d
		e.w.leases.mu.Unlock()
	}
	setTTL(time.Hour) // no lease lapses by itself until the test says so
	lease, other := caller(bus.NewListenLease(), "k1", ""), caller(bus.NewListenLease(), "k2", "")
	subscribe := func(who bus.Envelope, uri string) {
		t.Helper()
		if r := e.request(t, who, "resources/subscribe", `{"uri":"`+uri+`"}`, 1); r.gwErr != nil || r.rpcErr != nil {
			t.Fatalf("subscribe %s: %s %v", uri, r.raw, r.gwErr)
		}
	}
	subscribe(lease, "test://r1")
	subscribe(lease, "test://r1") // a renewal
	if s, _ := e.up.subCounts(); s != 1 {
		t.Fatalf("the upstream got %d subscribes for one lease and its renewal, want 1", s)
	}
	setTTL(50 * time.Millisecond)
	subscribe(lease, "test://r1") // the last renewal: it now lapses unless renewed again
	bustest.Eventually(t, 30*time.Second, "the unrenewed lease is dropped upstream", func() error {
		_, u := e.up.subCounts()
		return bustest.Want("unsubscribes upstream", u, 1)
	})
	if n := e.w.leases.held(); n != 0 {
		t.Fatalf("the worker still holds %d leases", n)
	}

	setTTL(time.Hour) // from here on only a release may end it
	subscribe(other, "test://r2")
	if err := e.nc.Publish(bus.SubjectSessionClosed, []byte(other.Session)); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "the released lease is dropped upstream", func() error {
		_, u := e.up.subCounts()
		return bustest.Want("unsubscribes upstream", u, 2)
	})
	if n := e.w.leases.held(); n != 0 {
		t.Fatalf("the worker still holds %d leases after the release", n)
	}
}
