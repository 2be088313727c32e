// Package bustest starts a real embedded NATS server with JetStream for tests.
package bustest

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/natsnode"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts nats-server with JetStream in t.TempDir(), listening on a random
// loopback port (so separate "processes" in a test can dial it), and stops it when
// the test ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	ns, err := natsnode.StartEmbedded(natsnode.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxMemory: 64 << 20, MaxStore: 256 << 20})
	if err != nil {
		t.Fatalf("start embedded nats: %v", err)
	}
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// Conn opens an in-process connection to ns, closed when the test ends.
func Conn(t testing.TB, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := natsnode.ConnectInProcess(ns, natsnode.ConnectOptions{Name: t.Name()})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// InternalCaller is the envelope header of a request from an internal caller
// whose key may use every server, as the router sends it: what a test that
// talks to a tool worker directly must send (workers refuse callers that may
// not see or use their server).
func InternalCaller() nats.Header {
	env := bus.Envelope{IPClass: bus.Internal, Caller: bus.Identity{Permissions: bus.AllowAll()}}
	return env.Header()
}

// ServerCache writes specs to the registry bucket on ns and returns a cache
// that follows it, as the gateway's services keep one; it stops with the test.
func ServerCache(t testing.TB, ns *server.Server, specs ...bus.ServerSpec) *servercache.Cache {
	t.Helper()
	nc := Conn(t, ns)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kv, err := bus.ServersBucket(ctx, js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		b, _ := json.Marshal(s)
		if _, err := kv.Put(ctx, s.Name, b); err != nil {
			t.Fatal(err)
		}
	}
	cache, err := servercache.Follow(ctx, nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return cache
}

// Eventually polls cond until it returns nil, and fails the test if it does
// not within d, naming what was awaited and the last error cond returned: a
// condition says why it does not hold yet ("3 events, want 5"), so a timeout
// shows how far things got. Polls every 10 ms.
func Eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(d, cond); err != nil {
		t.Fatalf("not within %s: %s: last: %v", d, what, err)
	}
}

// Poll is Eventually for a goroutine other than the test's (which may not
// fail the test): it polls cond every 10 ms until it returns nil, or returns
// its last error once d has passed.
func Poll(d time.Duration, cond func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Want is a condition for Eventually: nil when got equals want, else an error
// saying what was counted and both values.
func Want[T comparable](what string, got, want T) error {
	if got == want {
		return nil
	}
	return fmt.Errorf("%s: got %v, want %v", what, got, want)
}

// AtLeast is a condition for Eventually: nil when got is at least min, else
// an error saying what was counted and both values.
func AtLeast[T cmp.Ordered](what string, got, min T) error {
	if got >= min {
		return nil
	}
	return fmt.Errorf("%s: got %v, want at least %v", what, got, min)
}
