package auth

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// An ingress caches verify answers (bus.VerifyCacheTTL) only because auth
// says which may be cached and announces every change: a metered key is
// never cacheable, an expiring key says when, and an update is announced.
func TestVerifyAnswersCarryCacheHintsAndChangesAreAnnounced(t *testing.T) {
	ns := bustest.Server(t)
	a := startAuth(t, ns, nil)
	watcher := bustest.Conn(t, ns)
	changed := make(chan string, 64)
	sub, err := watcher.Subscribe(bus.SubjectAuthChanged, func(m *nats.Msg) { changed <- string(m.Data) })
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	_ = watcher.Flush()

	metered := generate(t, a.nc, map[string]any{"key_alias": "metered", "rpm_limit": 100})
	plain := generate(t, a.nc, map[string]any{"key_alias": "plain", "duration": "1h"})
	id, e := verifyBus(t, a.nc, metered.Key)
	if e != nil || !id.RateLimited {
		t.Fatalf("a key with rpm_limit verified as %+v, %v: want RateLimited so no ingress caches it", id, e)
	}
	id, e = verifyBus(t, a.nc, plain.Key)
	if e != nil || id.RateLimited || id.Expires == nil || time.Until(*id.Expires) > time.Hour {
		t.Fatalf("a 1h key without limits verified as %+v, %v: want cacheable with its expiry", id, e)
	}
	// Drop the announcements of the two new keys: auth announces a change
	// as it applies it (known waits for that), on its own connection, so
	// they come before a marker published there after.
	known(t, metered.Token, a)
	known(t, plain.Token, a)
	if err := a.nc.Publish(bus.SubjectAuthChanged, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	for m := ""; m != "marker"; {
		select {
		case m = <-changed:
		case <-time.After(30 * time.Second):
			t.Fatal("the marker did not arrive")
		}
	}
	if _, e := a.keyUpdate(context.Background(), actor{master: true}, []byte(fmt.Sprintf(`{"key":%q,"mcp_servers":["only"]}`, plain.Key))); e != nil {
		t.Fatal(e)
	}
	select {
	case <-changed:
	case <-time.After(30 * time.Second):
		t.Fatal("a key update was not announced on " + bus.SubjectAuthChanged + ": a caching ingress would keep the old permissions")
	}
}
