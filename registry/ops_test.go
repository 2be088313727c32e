package registry_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/registry"
	"github.com/nats-io/nats.go/jetstream"
)

func boolp(b bool) *bool { return &b }
func intp(n int) *int    { return &n }
func strp(s string) *string {
	return &s
}

// Drain and canary are edits of the record: visible in every answer and in
// the cache every service reads, a canary URL redacted like url.
func TestDrainAndCanaryEditTheRecord(t *testing.T) {
	r := startRegistry(t, registry.Options{}, bus.ServerSpec{Name: "a", URL: "https://a.example.com/mcp"})
	out := r.mustCall(bus.SubjectRegistryDrain, bus.DrainRequest{Name: "a", Drain: boolp(true)})
	if out["drain"] != true {
		t.Fatalf("drain answer: %v", out)
	}
	if s, _ := r.cache.Get("a"); !s.Drain {
		t.Fatal("the cache does not show the drain")
	}
	out = r.mustCall(bus.SubjectRegistryDrain, bus.DrainRequest{Name: "a", Drain: boolp(false)})
	if _, set := out["drain"]; set {
		t.Fatalf("undrain answer: %v", out)
	}

	out = r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet,
		URL: strp("https://b.example.com/mcp?token=canary-secret"), Percent: intp(25)})
	raw, _ := json.Marshal(out)
	if strings.Contains(string(raw), "canary-secret") || out["canary_percent"] != float64(25) || !strings.HasPrefix(out["canary_url"].(string), "https://b.example.com/mcp") {
		t.Fatalf("canary answer: %s", raw)
	}
	if s, _ := r.cache.Get("a"); !bus.IsSealed(s.CanaryURL) {
		t.Fatalf("a canary URL with a credential is stored unsealed: %q", s.CanaryURL)
	}
	// Ramp: percent alone keeps the target.
	out = r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet, Percent: intp(100)})
	if out["canary_percent"] != float64(100) || out["canary_url"] == nil {
		t.Fatalf("ramp answer: %v", out)
	}
	out = r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanaryPromote})
	if out["canary_url"] != nil || out["canary_percent"] != nil || !strings.HasPrefix(out["url"].(string), "https://b.example.com/mcp") {
		t.Fatalf("promote answer: %v", out)
	}
	if s, _ := r.cache.Get("a"); s.HasCanary() {
		t.Fatalf("promoted record still has a canary: %+v", s)
	}
	_, e := r.call(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanaryPromote})
	wantErr(t, e, bus.ErrConflict, "MCP server 'a' has no canary to promote")

	r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: strp("https://c.example.com/mcp"), Percent: intp(5)})
	out = r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanaryOff})
	if out["canary_url"] != nil || out["canary_percent"] != nil || !strings.HasPrefix(out["url"].(string), "https://b.example.com") {
		t.Fatalf("off answer: %v", out)
	}
}

// Every refusal names its field and says why.
func TestOpsRefusalsNameTheField(t *testing.T) {
	r := startRegistry(t, registry.Options{}, bus.ServerSpec{Name: "a", URL: "https://a.example.com/mcp"},
		bus.ServerSpec{Name: "s", Transport: "stdio", Command: "srv", Args: []string{"v1"}})
	for _, c := range []struct {
		name    string
		subject string
		body    any
		kind    bus.Kind
		want    string
	}{
		{"percent over 100", bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: strp("https://b.example.com/mcp"), Percent: intp(101)},
			bus.ErrBadRequest, "percent: must be a whole number from 0 to 100"},
		{"not http", bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: strp("ftp://b.example.com/mcp")},
			bus.ErrBadRequest, "mcp_servers.a.canary_url: must be an http(s) URL"},
		{"percent without canary", bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet, Percent: intp(10)},
			bus.ErrBadRequest, "mcp_servers.a.canary_percent: needs a canary"},
		{"url for stdio", bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "s", Action: bus.CanarySet, URL: strp("https://b.example.com/mcp")},
			bus.ErrBadRequest, "mcp_servers.s.canary_url: a stdio server's canary is canary_command"},
		{"stdio command from the API", bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "s", Action: bus.CanarySet, Command: strp("srv"), Args: []string{"v2"}, Percent: intp(10)},
			bus.ErrForbidden, "mcp_allow_stdio_servers_from_api"},
		{"command for http", bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet, Command: strp("srv"), Percent: intp(10)},
			bus.ErrBadRequest, "command: a canary command is for a stdio server"},
		{"unknown server", bus.SubjectRegistryDrain, bus.DrainRequest{Name: "nope", Drain: boolp(true)},
			bus.ErrNotFound, "MCP server 'nope' does not exist"},
		{"drain missing", bus.SubjectRegistryDrain, `{"name":"a"}`, bus.ErrBadRequest, "drain: required"},
		{"drain not a bool", bus.SubjectRegistryDrain, `{"name":"a","drain":"yes"}`, bus.ErrBadRequest, "drain: body must be"},
	} {
		_, e := r.call(c.subject, c.body)
		if e == nil || e.Kind != c.kind || !strings.Contains(e.Message, c.want) {
			t.Errorf("%s: got %v, want %s %q", c.name, e, c.kind.Code, c.want)
		}
	}
}

// A stdio canary the config file names can be promoted and aborted through
// the API without mcp_allow_stdio_servers_from_api: it runs nothing the file
// did not name.
func TestStdioCanaryOfTheFileCanBePromoted(t *testing.T) {
	r := startRegistry(t, registry.Options{}, bus.ServerSpec{Name: "s", Transport: "stdio", Command: "srv", Args: []string{"v1"},
		CanaryCommand: "srv", CanaryArgs: []string{"v2"}, CanaryPercent: 10})
	r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "s", Action: bus.CanarySet, Percent: intp(50)})
	r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "s", Action: bus.CanaryPromote})
	s, _ := r.cache.Get("s")
	if s.Command != "srv" || len(s.Args) != 1 || s.Args[0] != "v2" || s.HasCanary() {
		t.Fatalf("promoted stdio record: %+v", s)
	}
}

// A restart re-applies the file but keeps the operator's drain and canary
// where the file does not set them; a canary the file names wins.
func TestSeedKeepsOperations(t *testing.T) {
	r := startRegistry(t, registry.Options{}, bus.ServerSpec{Name: "a", URL: "https://a.example.com/mcp"},
		bus.ServerSpec{Name: "b", URL: "https://b.example.com/mcp"})
	r.mustCall(bus.SubjectRegistryDrain, bus.DrainRequest{Name: "a", Drain: boolp(true)})
	r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "a", Action: bus.CanarySet, URL: strp("https://a2.example.com/mcp?k=s"), Percent: intp(20)})
	r.mustCall(bus.SubjectRegistryCanary, bus.CanaryRequest{Name: "b", Action: bus.CanarySet, URL: strp("https://b2.example.com/mcp"), Percent: intp(20)})

	js, _ := jetstream.New(r.nc)
	file := []bus.ServerSpec{{Name: "a", URL: "https://a.example.com/mcp"},
		{Name: "b", URL: "https://b.example.com/mcp", CanaryURL: "https://b3.example.com/mcp", CanaryPercent: 5}}
	if err := registry.Seed(context.Background(), js, r.kv, file, testKey, slog.Default()); err != nil {
		t.Fatal(err)
	}
	a := r.mustCall(bus.SubjectRegistryGet, bus.ServerRef{Name: "a"})
	if a["drain"] != true || a["canary_percent"] != float64(20) || !strings.HasPrefix(a["canary_url"].(string), "https://a2.example.com/mcp") {
		t.Errorf("a after the restart: %v", a)
	}
	b := r.mustCall(bus.SubjectRegistryGet, bus.ServerRef{Name: "b"})
	if b["canary_url"] != "https://b3.example.com/mcp" || b["canary_percent"] != float64(5) {
		t.Errorf("b after the restart: %v", b)
	}
}
