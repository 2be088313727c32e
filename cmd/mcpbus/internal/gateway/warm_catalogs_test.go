package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// After a restart on the same data directory, the first tools/list of a
// server the gateway listed before is answered from the catalog it kept
// (here: the tool as it was before the upstream changed it while the
// gateway was down), the upstream is asked meanwhile, the change goes out as
// the server's tools/list_changed, and the next list is the upstream's. A
// server whose upstream is another since is never answered from the kept
// page.
func TestWarmCatalogAfterARestart(t *testing.T) {
	up := newPinUpstream(t)
	dir := t.TempDir()
	config := func(url string) string {
		return fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  pinned: {url: %q}\n", master, url)
	}
	onDir := func(o *Options) { o.DataDir = dir }
	echo := func(g *testGateway) string {
		h := initSession(t, g.URL()+"/mcp/pinned", bearer(master))
		return pinTools(t, g.URL()+"/mcp/pinned", h)["echo"]
	}

	g := startGatewayOpts(t, config(up.url), nil, onDir)
	if got := echo(g); got != "Echoes its input." {
		t.Fatalf("first gateway lists echo as %q", got)
	}
	closeNow(t, g)
	up.setEcho("Echoes, changed while the gateway was down.")

	g = startGatewayOpts(t, config(up.url), nil, onDir)
	notices := make(chan string, 8)
	if _, err := testConn(t, g.Gateway).Subscribe(bus.NotifySubject("pinned"), func(m *nats.Msg) {
		var n struct{ Method string }
		_ = json.Unmarshal(m.Data, &n)
		notices <- n.Method
	}); err != nil {
		t.Fatal(err)
	}
	if got := echo(g); got != "Echoes its input." {
		t.Fatalf("the first list after the restart lists echo as %q, want the kept catalog's", got)
	}
	select {
	case m := <-notices:
		if m != "notifications/tools/list_changed" {
			t.Fatalf("notice %q", m)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no tools/list_changed after the upstream's list turned out to differ from the kept one")
	}
	bustest.Eventually(t, 30*time.Second, "the upstream's list after the refresh", func() error {
		if got := echo(g); got != "Echoes, changed while the gateway was down." {
			return fmt.Errorf("echo is %q", got)
		}
		return nil
	})
	closeNow(t, g)

	other := newPinUpstream(t)
	other.setEcho("Another upstream.")
	g = startGatewayOpts(t, config(other.url), nil, onDir)
	if got := echo(g); got != "Another upstream." {
		t.Fatalf("a server moved to another upstream lists echo as %q, want the new upstream's", got)
	}
}

// closeNow stops g before the test ends (its cleanup closes it again, a no-op).
func closeNow(t *testing.T, g *testGateway) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.Close(ctx); err != nil {
		t.Fatal(err)
	}
}
