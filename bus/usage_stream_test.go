package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestUsageStreamLimitsAndDedup(t *testing.T) {
	ns := bustest.Server(t)
	js, err := jetstream.New(bustest.Conn(t, ns))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if cfg.Storage != jetstream.FileStorage || cfg.MaxAge != bus.DefaultUsageMaxAge || cfg.MaxBytes != 64<<20 ||
		cfg.Duplicates != bus.DefaultUsageDuplicates || len(cfg.Subjects) != 1 || cfg.Subjects[0] != "mcpbus.v1.usage.>" {
		t.Fatalf("stream config: %+v", cfg)
	}
	// A second host applying the same config is fine.
	if _, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{MaxBytes: 64 << 20}); err != nil {
		t.Fatalf("second create: %v", err)
	}
	subj := bus.UsageSubject("team-1", "github", "search")
	for i, want := range []bool{false, true} {
		m := nats.NewMsg(subj)
		m.Header.Set(nats.MsgIdHdr, "req-1")
		m.Data = []byte(`{}`)
		ack, err := js.PublishMsg(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if ack.Duplicate != want {
			t.Fatalf("publish #%d: duplicate %v, want %v", i, ack.Duplicate, want)
		}
	}
	if info, _ := s.Info(ctx); info.State.Msgs != 1 {
		t.Fatalf("stream holds %d events, want 1", info.State.Msgs)
	}
}

func TestUsageDefaultsAndFilter(t *testing.T) {
	cfg := bus.UsageStreamConfig(bus.UsageStreamOptions{})
	if cfg.Name != bus.StreamUsage || cfg.MaxBytes != 1<<30 || cfg.MaxAge != 30*24*time.Hour || cfg.Discard != jetstream.DiscardOld {
		t.Fatalf("defaults: %+v", cfg)
	}
	for _, tc := range []struct{ team, server, tool, want string }{
		{"", "", "", "mcpbus.v1.usage.*.*.*"},
		{"", "github", "", "mcpbus.v1.usage.*.github.*"},
		{"t1", "", "", "mcpbus.v1.usage.t1.*.*"},
		{"", "github", "a.b", "mcpbus.v1.usage.*.github.a_b"},
	} {
		if got := bus.UsageFilter(tc.team, tc.server, tc.tool); got != tc.want {
			t.Errorf("UsageFilter(%q,%q,%q) = %q, want %q", tc.team, tc.server, tc.tool, got, tc.want)
		}
	}
	if got := bus.UsageSubject("", "github", ""); got != "mcpbus.v1.usage._noteam.github._none" {
		t.Errorf("UsageSubject: %q", got)
	}
}

// The default 1 GiB does not fit a 256 MiB test server: the stream gets half
// of what fits, leaving room for the rest, and keeps it across restarts; an
// explicit size that does not fit is an error.
func TestUsageStreamShrinksToFit(t *testing.T) {
	ns := bustest.Server(t)
	js, _ := jetstream.New(bustest.Conn(t, ns))
	ctx := context.Background()
	for range 3 { // every start re-applies the config
		s, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := s.CachedInfo().Config.MaxBytes; got != 128<<20 {
			t.Fatalf("MaxBytes %d MiB, want 128 MiB", got>>20)
		}
	}
	// Room is left for a bucket that reserves storage too, and the stream
	// keeps its size when restarted after that.
	if _, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "other", MaxBytes: 100 << 20, Storage: jetstream.FileStorage}); err != nil {
		t.Fatalf("no room left: %v", err)
	}
	if s, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{}); err != nil || s.CachedInfo().Config.MaxBytes != 128<<20 {
		t.Fatalf("restart next to another bucket: %v", err)
	}
	if err := js.DeleteStream(ctx, bus.StreamUsage); err != nil {
		t.Fatal(err)
	}
	if _, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{MaxBytes: 1 << 30}); err == nil {
		t.Fatal("an explicit MaxBytes over the server's store was accepted")
	}
}
