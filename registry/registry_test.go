package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/mcpbus/mcpbus/registry"
	"github.com/nats-io/nats.go/jetstream"
)

func TestSeedWatchAndRedactedLookups(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc := bustest.Conn(t, bustest.Server(t))
	js, _ := jetstream.New(nc)
	kv, err := bus.ServersBucket(ctx, js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.Default()
	// An API-made record and a stale config record from an earlier start.
	api, _ := json.Marshal(bus.ServerSpec{Name: "from-api", URL: "http://127.0.0.1:1/mcp", Source: "api"})
	stale, _ := json.Marshal(bus.ServerSpec{Name: "old", URL: "http://127.0.0.1:2/mcp", Source: "config"})
	kv.Put(ctx, "from-api", api)
	kv.Put(ctx, "old", stale)

	specs := []bus.ServerSpec{{Name: "github", URL: "https://user:pw@api.example.com/mcp", AuthType: "bearer_token",
		AuthValue: "ghp_secret", StaticHeaders: map[string]string{"X-Tenant": "t-secret"}}}
	if err := registry.Seed(ctx, js, kv, specs, testKey, log); err != nil {
		t.Fatal(err)
	}
	// At rest the credentials are sealed: nothing of them in the record.
	rec, err := kv.Get(ctx, "github")
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"ghp_secret", "t-secret", "user:pw"} {
		if strings.Contains(string(rec.Value()), secret) {
			t.Fatalf("the stored record holds %q in plain text: %s", secret, rec.Value())
		}
	}
	// Seeding the same file again rewrites nothing (sealing is deterministic).
	if err := registry.Seed(ctx, js, kv, specs, testKey, log); err != nil {
		t.Fatal(err)
	}
	if again, _ := kv.Get(ctx, "github"); again.Revision() != rec.Revision() {
		t.Fatalf("re-seeding an unchanged server wrote revision %d over %d", again.Revision(), rec.Revision())
	}
	cache, err := servercache.Follow(ctx, nc, log)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range cache.List() {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "from-api,github" {
		t.Fatalf("servers after seed = %v, want the API record kept and the stale config record gone", names)
	}
	svc, err := registry.Start(nc, cache, registry.Options{KV: kv, Secrets: testKey})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()

	msg, err := nc.Request(bus.SubjectRegistryGet, []byte(`{"name":"github"}`), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"ghp_secret", "t-secret", "pw"} {
		if strings.Contains(string(msg.Data), secret) {
			t.Fatalf("registry answer leaks %q: %s", secret, msg.Data)
		}
	}
	msg, _ = nc.Request(bus.SubjectRegistryGet, []byte(`{"name":"nope"}`), time.Second)
	if e := bus.ReplyError(msg); e == nil || e.Kind != bus.ErrNotFound || e.Message != "MCP server 'nope' does not exist" {
		t.Fatalf("unknown server: %v", e)
	}

	// A live edit reaches the cache through the watch.
	added, _ := json.Marshal(bus.ServerSpec{Name: "late", URL: "http://127.0.0.1:3/mcp", Source: "api"})
	kv.Put(ctx, "late", added)
	bustest.Eventually(t, 30*time.Second, "a KV put reaches the cache", func() error {
		if _, ok := cache.Get("late"); !ok {
			return errors.New("no server late in the cache")
		}
		return nil
	})
	msg, _ = nc.Request(bus.SubjectRegistryList, nil, time.Second)
	var list []bus.ServerSpec
	json.Unmarshal(msg.Data, &list)
	if len(list) != 3 {
		t.Fatalf("list = %d servers, want 3", len(list))
	}
}

var testKey = func() *bus.SecretKey {
	k, err := bus.NewSecretKey("registry-test-secret-key-0123456789")
	if err != nil {
		panic(err)
	}
	return k
}()

// Without a key, a literal credential is refused (it would be stored in
// plain text), naming the server, the fields and the variable to set;
// environment references need no key.
func TestSeedWithoutKeyRefusesPlainCredentials(t *testing.T) {
	ctx := context.Background()
	nc := bustest.Conn(t, bustest.Server(t))
	js, _ := jetstream.New(nc)
	kv, err := bus.ServersBucket(ctx, js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	err = registry.Seed(ctx, js, kv, []bus.ServerSpec{{Name: "gh", URL: "https://api.example.com/mcp?token=q", AuthType: "bearer_token", AuthValue: "ghp_x"}}, nil, slog.Default())
	if err == nil || !strings.Contains(err.Error(), `server "gh": auth_value, url would be stored in plain text: set MCPBUS_SALT_KEY`) {
		t.Fatalf("seed without a key: %v", err)
	}
	if _, err := kv.Get(ctx, "gh"); err == nil {
		t.Fatal("the record was stored anyway")
	}
	refs := []bus.ServerSpec{{Name: "gh", URL: "https://api.example.com/mcp", AuthType: "bearer_token", AuthValue: "os.environ/GH_TOKEN"}}
	if err := registry.Seed(ctx, js, kv, refs, nil, slog.Default()); err != nil {
		t.Fatalf("environment references without a key: %v", err)
	}
}

// Records stored before credentials were sealed (an older mcpbus) are sealed
// at the next start, config-made and API-made alike, and no revision of the
// bucket's history keeps the plain text.
func TestSeedSealsOldRecordsAndTheirHistory(t *testing.T) {
	ctx := context.Background()
	nc := bustest.Conn(t, bustest.Server(t))
	js, _ := jetstream.New(nc)
	kv, err := bus.ServersBucket(ctx, js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	old := []bus.ServerSpec{
		{Name: "cfg", URL: "https://api.example.com/mcp", AuthType: "bearer_token", AuthValue: "legacy-config-secret", Source: "config"},
		{Name: "api", URL: "https://api.example.com/mcp", AuthType: "api_key", AuthValue: "legacy-api-secret", Source: "api"},
	}
	for _, s := range old {
		data, _ := json.Marshal(s)
		if _, err := kv.Put(ctx, s.Name, data); err != nil {
			t.Fatal(err)
		}
	}
	cfg := old[0]
	cfg.Source = ""
	if err := registry.Seed(ctx, js, kv, []bus.ServerSpec{cfg}, testKey, slog.Default()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cfg", "api"} {
		hist, err := kv.History(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range hist {
			if strings.Contains(string(e.Value()), "legacy-") {
				t.Errorf("%s revision %d keeps a plain-text credential: %s", name, e.Revision(), e.Value())
			}
		}
		e, _ := kv.Get(ctx, name)
		var s bus.ServerSpec
		_ = json.Unmarshal(e.Value(), &s)
		if opened, err := testKey.Open(s); err != nil || !strings.HasPrefix(opened.AuthValue, "legacy-") {
			t.Errorf("%s: sealed record does not open to its credential: %v %+v", name, err, opened)
		}
	}
}
