package natsnode_test

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// A connection logs a slow consumer once per interval however many messages
// it drops, and says when it is disconnected.
func TestConnectionEventsAreLogged(t *testing.T) {
	ns, err := natsnode.StartEmbedded(natsnode.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	var out bustest.Buffer
	nc, err := natsnode.Connect(ns.ClientURL(), natsnode.ConnectOptions{Name: "probe", Log: slog.New(slog.NewTextHandler(&out, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	block := make(chan struct{})
	sub, err := nc.Subscribe("flood", func(*nats.Msg) { <-block })
	if err != nil {
		t.Fatal(err)
	}
	_ = sub.SetPendingLimits(10, 1<<20)
	pub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for range 2000 {
		_ = pub.Publish("flood", []byte("x"))
	}
	pub.Flush()
	bustest.Eventually(t, 30*time.Second, "a slow consumer line", logHas(&out, "slow consumer"))
	if n, _ := sub.Dropped(); n < 100 || strings.Count(out.String(), "slow consumer") != 1 {
		t.Fatalf("%d dropped, log:\n%s", n, out.String())
	}
	close(block)
	shutdown(ns)
	bustest.Eventually(t, 30*time.Second, "a disconnect line", logHas(&out, "bus disconnected; reconnecting"))
}

// logHas is a condition for Eventually: out has a line containing s.
func logHas(out *bustest.Buffer, s string) func() error {
	return func() error {
		if got := out.String(); !strings.Contains(got, s) {
			return fmt.Errorf("no %q in the log:\n%s", s, got)
		}
		return nil
	}
}

func shutdown(ns *server.Server) { ns.Shutdown(); ns.WaitForShutdown() }
