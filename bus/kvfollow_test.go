package bus

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FollowKV sees the bucket as it was and every later put and delete, in
// revision order, through subscriptions and gets only (no consumer).
func TestFollowKV(t *testing.T) {
	nc, js := embeddedJS(t)
	ctx := context.Background()
	kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: BucketServers, History: 3})
	if err != nil {
		t.Fatal(err)
	}
	kv.Put(ctx, "a", []byte("a1"))
	kv.Put(ctx, "b", []byte("b1"))
	kv.Put(ctx, "a", []byte("a2"))
	var mu sync.Mutex
	seen := map[string]string{}
	var order []string
	f, err := FollowKV(ctx, nc, BucketServers, nil, func(e KVEntry) {
		mu.Lock()
		defer mu.Unlock()
		if e.Deleted {
			delete(seen, e.Key)
			order = append(order, e.Key+"-")
			return
		}
		seen[e.Key] = string(e.Value)
		order = append(order, e.Key+"="+string(e.Value))
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	mu.Lock()
	if seen["a"] != "a2" || seen["b"] != "b1" || len(seen) != 2 {
		t.Fatalf("loaded %v, want a2 and b1", seen)
	}
	mu.Unlock()
	kv.Put(ctx, "c", []byte("c1"))
	kv.Delete(ctx, "b")
	kv.Put(ctx, "a", []byte("a3"))
	eventually(t, 10*time.Second, "the follower applies a put, a delete and an update", func() error {
		mu.Lock()
		defer mu.Unlock()
		if seen["a"] != "a3" || seen["c"] != "c1" || seen["b"] != "" {
			return fmt.Errorf("seen %v, want a=a3 c=c1 and no b", seen)
		}
		return nil
	})
	// Following named keys only: others are never read.
	var got []string
	g, err := FollowKV(ctx, nc, BucketServers, []string{"c"}, func(e KVEntry) { mu.Lock(); got = append(got, e.Key); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	kv.Put(ctx, "a", []byte("a4"))
	kv.Put(ctx, "c", []byte("c2"))
	eventually(t, 10*time.Second, "both puts of c", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(got) != 2 {
			return fmt.Errorf("read %v, want c twice", got)
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	for _, k := range got {
		if k != "c" {
			t.Fatalf("a follower of c read %q", k)
		}
	}
}

// eventually is bustest.Eventually for this package's own tests (bustest
// imports bus): it polls cond until it returns nil, and fails naming what was
// awaited and the last error if it does not within d.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s: last: %v", d, what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// embeddedJS is a connection to a NATS server with JetStream started for
// the test (bustest and natsnode cannot be used here: they import bus).
func embeddedJS(t *testing.T) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	ns, err := server.NewServer(&server.Options{JetStream: true, StoreDir: t.TempDir(), DontListen: true, MaxPayload: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect("", nats.InProcessServer(ns))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// A follow that fails (here on its second key) leaves no subscription
// behind on the connection.
func TestFollowKVFailureLeavesNoSubscription(t *testing.T) {
	nc, _ := embeddedJS(t)
	before := nc.NumSubscriptions()
	if _, err := FollowKV(context.Background(), nc, BucketSessions, []string{"good", "not a key"}, func(KVEntry) {}); err == nil {
		t.Fatal("followed a key that is not one")
	}
	if n := nc.NumSubscriptions(); n != before {
		t.Fatalf("%d subscriptions left behind", n-before)
	}
}
