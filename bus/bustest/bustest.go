// Package bustest starts a real embedded NATS server with JetStream for tests.
package bustest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Server starts nats-server with JetStream in t.TempDir(), listening on a random
// loopback port (so separate "processes" in a test can dial it), and stops it when
// the test ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	ns, err := bus.StartEmbedded(bus.EmbeddedOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", MaxMemory: 64 << 20, MaxStore: 256 << 20})
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
	nc, err := bus.ConnectInProcess(ns, bus.ConnectOptions{Name: t.Name()})
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
	env := bus.Envelope{IPClass: bus.Internal, Caller: bus.Identity{Permissions: bus.Permissions{AllServers: true}}}
	return env.Header()
}

// ServerCache writes specs to the registry bucket on ns and returns a cache
// that follows it, as the gateway's services keep one; it stops with the test.
func ServerCache(t testing.TB, ns *server.Server, specs ...bus.ServerSpec) *bus.ServerCache {
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
	cache, err := bus.FollowServers(ctx, nc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return cache
}

// Eventually polls cond every 5 ms until it holds, and fails the test naming
// what was awaited if it does not within d.
func Eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
	}
}
