package bus_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go/jetstream"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// On a real 3-node cluster: state is created with 3 replicas by default;
// a service start never lowers replicas, history or limits an operator
// raised; R1 state found there is named in a warning; an explicit setting
// raises what exists.
func TestStateReplicasOnACluster(t *testing.T) {
	nodes := bustest.Cluster(t, 3)
	nc := bustest.ClusterConn(t, nodes)
	bustest.Eventually(t, 10*time.Second, "the client learns all 3 servers", func() error {
		if n := bus.ClusterSize(nc); n != 3 {
			return fmt.Errorf("it knows %d", n)
		}
		return nil
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	// Up to bus.FormingWait per step: on a loaded machine the cluster's JetStream
	// API was seen not to answer for a minute.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	logs := &syncBuffer{}
	policy := func(r bus.Replicas) bus.StatePolicy {
		return bus.StatePolicy{Replicas: r, Log: slog.New(slog.NewTextHandler(logs, nil))}
	}
	replicas := func(stream string) (int, jetstream.StreamConfig) {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		c := s.CachedInfo().Config
		return c.Replicas, c
	}

	// Auto: 3 replicas on a cluster of 3, for a bucket and for the usage stream.
	if _, err := bus.ServersBucket(ctx, js, policy(bus.AutoReplicas)); err != nil {
		t.Fatal(err)
	}
	if n, _ := replicas("KV_" + bus.BucketServers); n != 3 {
		t.Fatalf("servers bucket: %d replicas, want 3", n)
	}
	if _, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{MaxBytes: 16 << 20, State: policy(bus.AutoReplicas)}); err != nil {
		t.Fatal(err)
	}
	if n, _ := replicas(bus.StreamUsage); n != 3 {
		t.Fatalf("usage stream: %d replicas, want 3", n)
	}

	// An operator raises history and size by hand; a start asking for 1
	// replica lowers none of it.
	s, _ := js.Stream(ctx, "KV_"+bus.BucketServers)
	raisedCfg := s.CachedInfo().Config
	raisedCfg.MaxMsgsPerSubject, raisedCfg.MaxBytes = 20, 32<<20
	if _, err := js.UpdateStream(ctx, raisedCfg); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.ServersBucket(ctx, js, policy(1)); err != nil {
		t.Fatal(err)
	}
	if n, c := replicas("KV_" + bus.BucketServers); n != 3 || c.MaxMsgsPerSubject != 20 || c.MaxBytes != 32<<20 {
		t.Fatalf("a start lowered what the operator set: replicas %d, history %d, max bytes %d", n, c.MaxMsgsPerSubject, c.MaxBytes)
	}
	if strings.Contains(logs.String(), bus.BucketServers+" has 1 replica") {
		t.Fatalf("warned about a replicated bucket: %s", logs.String())
	}

	// R1 state on a cluster of 3 is named, with the setting that fixes it.
	kvCfg := jetstream.KeyValueConfig{Bucket: "mcpbus_probe", History: 1, Storage: jetstream.FileStorage}
	if _, err := bus.EnsureKV(ctx, js, kvCfg, policy(1)); err != nil {
		t.Fatal(err)
	}
	if n, _ := replicas("KV_mcpbus_probe"); n != 1 {
		t.Fatalf("explicit 1: %d replicas", n)
	}
	if _, err := bus.EnsureKV(ctx, js, kvCfg, policy(1)); err != nil {
		t.Fatal(err)
	}
	if l := logs.String(); !strings.Contains(l, "kv bucket mcpbus_probe has 1 replica on a NATS cluster of 3 servers") || !strings.Contains(l, "nats_replicas: 3") {
		t.Fatalf("no warning for R1 state on a cluster of 3: %s", l)
	}
	// And the setting raises it in place.
	if _, err := bus.EnsureKV(ctx, js, kvCfg, policy(3)); err != nil {
		t.Fatal(err)
	}
	if n, _ := replicas("KV_mcpbus_probe"); n != 3 {
		t.Fatalf("nats_replicas 3 left the bucket at %d replicas", n)
	}
}

// The embedded single node keeps its state once: auto means 1 there.
func TestStateReplicasOnOneNode(t *testing.T) {
	ns := bustest.Server(t)
	js, _ := jetstream.New(bustest.Conn(t, ns))
	kv, err := bus.EnsureKV(context.Background(), js, jetstream.KeyValueConfig{Bucket: "one", Storage: jetstream.MemoryStorage}, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := kv.Status(context.Background())
	if st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 1 {
		t.Fatal("auto on one node is not 1 replica")
	}
}
