package bus

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// A repeated warning is one line per interval, saying how often it came.
func TestRateLimitedWarnings(t *testing.T) {
	var out logBuf
	log := slog.New(slog.NewTextHandler(&out, nil))
	now := time.Unix(1000, 0)
	r := RateLimited{now: func() time.Time { return now }}
	for range 50 {
		r.Warn(log, "slow")
	}
	r.Warn(log, "other")
	now = now.Add(WarnEvery)
	r.Warn(log, "slow")
	got := out.String()
	if strings.Count(got, "msg=slow") != 2 || !strings.Contains(got, "msg=slow times=1") || !strings.Contains(got, "msg=slow times=50") ||
		strings.Count(got, "msg=other") != 1 {
		t.Fatalf("log:\n%s", got)
	}
}

// A connection logs a slow consumer once per interval however many messages
// it drops, and says when it is disconnected.
func TestConnectionEventsAreLogged(t *testing.T) {
	ns, err := StartEmbedded(EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	var out logBuf
	nc, err := Connect(ns.ClientURL(), ConnectOptions{Name: "probe", Log: slog.New(slog.NewTextHandler(&out, nil))})
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
	eventually(t, 30*time.Second, "a slow consumer line", logHas(&out, "slow consumer"))
	if n, _ := sub.Dropped(); n < 100 || strings.Count(out.String(), "slow consumer") != 1 {
		t.Fatalf("%d dropped, log:\n%s", n, out.String())
	}
	close(block)
	shutdown(ns)
	eventually(t, 30*time.Second, "a disconnect line", logHas(&out, "bus disconnected; reconnecting"))
}

// logHas is a condition for eventually: out has a line containing s.
func logHas(out *logBuf, s string) func() error {
	return func() error {
		if got := out.String(); !strings.Contains(got, s) {
			return fmt.Errorf("no %q in the log:\n%s", s, got)
		}
		return nil
	}
}

func shutdown(ns *server.Server) { ns.Shutdown(); ns.WaitForShutdown() }
