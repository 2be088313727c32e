package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/internal/servercache"
	"github.com/mcpbus/mcpbus/registry"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type regEnv struct {
	t      *testing.T
	nc     *nats.Conn
	kv     jetstream.KeyValue
	cache  *servercache.Cache
	agents jetstream.KeyValue
}

func startRegistry(t *testing.T, o registry.Options, seed ...bus.ServerSpec) *regEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	nc := bustest.Conn(t, bustest.Server(t))
	js, _ := jetstream.New(nc)
	kv, err := bus.ServersBucket(ctx, js, bus.StatePolicy{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Secrets == nil {
		o.Secrets = testKey
	}
	if err := registry.Seed(ctx, js, kv, seed, o.Secrets, slog.Default()); err != nil {
		t.Fatal(err)
	}
	cache, err := servercache.Follow(ctx, nc, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	o.KV = kv
	if o.AgentsKV == nil {
		if o.AgentsKV, err = bus.AgentsBucket(ctx, js, bus.StatePolicy{}); err != nil {
			t.Fatal(err)
		}
	}
	if o.Env == nil {
		o.Env = func(k string) (string, bool) {
			if k == "SET_VAR" {
				return "from-env", true
			}
			return "", false
		}
	}
	svc, err := registry.Start(nc, cache, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Stop() })
	return &regEnv{t, nc, kv, cache, o.AgentsKV}
}

// call sends body (a string, or anything JSON) and returns the answer.
func (r *regEnv) call(subject string, body any) (map[string]any, *bus.Error) {
	r.t.Helper()
	data, ok := body.(string)
	if !ok {
		b, _ := json.Marshal(body)
		data = string(b)
	}
	msg, err := r.nc.Request(subject, []byte(data), 5*time.Second)
	if err != nil {
		r.t.Fatalf("%s: %v", subject, err)
	}
	if e := bus.ReplyError(msg); e != nil {
		return nil, e
	}
	var out map[string]any
	if err := json.Unmarshal(msg.Data, &out); err != nil {
		r.t.Fatalf("%s: answer %s", subject, msg.Data)
	}
	return out, nil
}

func (r *regEnv) mustCall(subject string, body any) map[string]any {
	r.t.Helper()
	out, e := r.call(subject, body)
	if e != nil {
		r.t.Fatalf("%s %v: %s %s", subject, body, e.Kind.Code, e.Message)
	}
	return out
}

func wantErr(t *testing.T, e *bus.Error, kind bus.Kind, contains ...string) {
	t.Helper()
	if e == nil || e.Kind != kind {
		t.Fatalf("error = %v, want %s", e, kind.Code)
	}
	for _, c := range contains {
		if !strings.Contains(e.Message, c) {
			t.Fatalf("error %q does not contain %q", e.Message, c)
		}
	}
}

func TestCreateGetListDelete(t *testing.T) {
	r := startRegistry(t, registry.Options{})
	out := r.mustCall(bus.SubjectRegistryCreate, map[string]any{
		"server_name": "github", "url": "https://user:pw-secret@api.example.com/mcp?token=q-secret",
		"auth_type": "bearer_token", "auth_value": "ghp-secret", "static_headers": map[string]string{"X-Tenant": "hdr-secret"},
		"timeout": 30, "mcp_info": map[string]any{"logo": "x"}, "available_on_public_internet": true,
	})
	raw, _ := json.Marshal(out)
	for _, s := range []string{"pw-secret", "q-secret", "ghp-secret", "hdr-secret"} {
		if strings.Contains(string(raw), s) {
			t.Fatalf("create answer leaks %q: %s", s, raw)
		}
	}
	if out["server_id"] != "github" || out["source"] != "api" || out["timeout"] != "30s" || out["revision"] == nil ||
		out["auth_value"] != bus.Redacted || out["available_on_public_internet"] != true {
		t.Fatalf("create answer: %s", raw)
	}
	// Readers sharing the cache see the write as soon as it is answered,
	// its credential sealed (only a key holder reads it).
	s, ok := r.cache.Get("github")
	if !ok || !bus.IsSealed(s.AuthValue) || s.Source != "api" {
		t.Fatalf("cache after create: %+v %v", s, ok)
	}
	if s, _ = testKey.Open(s); s.AuthValue != "ghp-secret" {
		t.Fatalf("opened: %+v", s)
	}

	got := r.mustCall(bus.SubjectRegistryGet, bus.ServerRef{Name: "github"})
	if got["revision"] != out["revision"] || got["auth_value"] != bus.Redacted {
		t.Fatalf("get: %v", got)
	}
	msg, _ := r.nc.Request(bus.SubjectRegistryList, nil, time.Second)
	var list []bus.ServerRecord
	json.Unmarshal(msg.Data, &list)
	if len(list) != 1 || list[0].ServerID != "github" || list[0].Revision == 0 || strings.Contains(string(msg.Data), "secret") {
		t.Fatalf("list: %s", msg.Data)
	}

	_, e := r.call(bus.SubjectRegistryCreate, map[string]any{"server_name": "github", "url": "https://other.example.com/mcp"})
	wantErr(t, e, bus.ErrConflict, "MCP server 'github' already exists")

	r.mustCall(bus.SubjectRegistryDelete, bus.ServerRef{Name: "github"})
	if _, ok := r.cache.Get("github"); ok {
		t.Fatal("cache still has the deleted server")
	}
	_, e = r.call(bus.SubjectRegistryDelete, bus.ServerRef{Name: "github"})
	wantErr(t, e, bus.ErrNotFound, "MCP server 'github' does not exist")
	_, e = r.call(bus.SubjectRegistryGet, bus.ServerRef{Name: "github"})
	wantErr(t, e, bus.ErrNotFound)
	// A deleted name can be created again.
	r.mustCall(bus.SubjectRegistryCreate, map[string]any{"server_id": "github", "url": "https://api.example.com/mcp"})
}

func TestWriteValidation(t *testing.T) {
	r := startRegistry(t, registry.Options{}, bus.ServerSpec{Name: "taken", URL: "http://127.0.0.1:1/mcp", Alias: "gh"})
	for _, tc := range []struct {
		name string
		body string
		kind bus.Kind
		want string
	}{
		{"not an object", `[1]`, bus.ErrBadRequest, "request body must be a JSON object"},
		{"no name", `{"url":"https://x.example.com/mcp"}`, bus.ErrBadRequest, "server_name is required"},
		{"bad name", `{"server_name":"bad name","url":"https://x.example.com/mcp"}`, bus.ErrBadRequest,
			`mcp_servers["bad name"]: server name must be 1-64 characters`},
		{"names disagree", `{"server_name":"a","server_id":"b"}`, bus.ErrBadRequest, "server_name and server_id disagree"},
		{"wrong type", `{"server_name":"x","url":42}`, bus.ErrBadRequest, "mcp_servers.x.url: expected a string, got a JSON number"},
		{"bad url", `{"server_name":"x","url":"ftp://x.example.com/"}`, bus.ErrBadRequest, `mcp_servers.x.url: must be an http(s) URL (got "ftp://x.example.com/")`},
		{"missing url", `{"server_name":"x"}`, bus.ErrBadRequest, "mcp_servers.x.url: required"},
		{"bad transport", `{"server_name":"x","url":"https://x.example.com/mcp","transport":"carrier-pigeon"}`, bus.ErrBadRequest,
			"mcp_servers.x.transport: must be http (Streamable HTTP), sse, stdio or connector (served by mcpbus connector)"},
		// auth_type without auth_value is valid: each request brings the
		// credential (config.Upstream.CredentialFromRequest).
		{"access group name", `{"server_name":"x","url":"https://x.example.com/mcp","access_groups":["dev","a.b"]}`, bus.ErrBadRequest,
			`mcp_servers.x.access_groups: "a.b" is not an access group name`},
		{"missing env", `{"server_name":"x","url":"https://x.example.com/mcp","auth_type":"api_key","auth_value":"os.environ/NOT_SET"}`,
			bus.ErrBadRequest, "mcp_servers.x.auth_value: environment variable NOT_SET is not set"},
		{"bad timeout", `{"server_name":"x","url":"https://x.example.com/mcp","timeout":"soon"}`, bus.ErrBadRequest,
			`mcp_servers.x.timeout: must be a number of seconds or a Go duration`},
		{"negative count", `{"server_name":"x","url":"https://x.example.com/mcp","max_concurrent_requests":-1}`, bus.ErrBadRequest,
			"mcp_servers.x.max_concurrent_requests: must be a whole number, 0 or more"},
		{"redaction marker", `{"server_name":"x","url":"https://x.example.com/mcp","auth_type":"api_key","auth_value":"[redacted]"}`,
			bus.ErrBadRequest, "mcp_servers.x.auth_value: is the redaction marker"},
		{"prefix taken", `{"server_name":"x","url":"https://x.example.com/mcp","alias":"gh"}`, bus.ErrBadRequest,
			"mcp_servers.x.alias: tool prefix (alias, else name) is already used by server taken"},
		{"revision on create", `{"server_name":"x","url":"https://x.example.com/mcp","revision":3}`, bus.ErrBadRequest, "revision"},
		{"stdio", `{"server_name":"x","command":"rm","args":["-rf","/"]}`, bus.ErrForbidden, "mcp_allow_stdio_servers_from_api"},
		{"stdio by transport", `{"server_name":"x","transport":"stdio","command":"sh"}`, bus.ErrForbidden, "mcp_allow_stdio_servers_from_api"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, e := r.call(bus.SubjectRegistryCreate, tc.body)
			wantErr(t, e, tc.kind, tc.want)
		})
	}
	// A reference to a variable this process has is accepted and kept as a reference.
	out := r.mustCall(bus.SubjectRegistryCreate, `{"server_name":"envy","url":"https://x.example.com/mcp","auth_type":"api_key","auth_value":"os.environ/SET_VAR"}`)
	if s, _ := r.cache.Get("envy"); s.AuthValue != "os.environ/SET_VAR" || out["auth_value"] != bus.Redacted {
		t.Fatalf("env reference stored as %q, answered %v", s.AuthValue, out["auth_value"])
	}
	// Stdio keys on an HTTP server are dropped, as the config loader does.
	r.mustCall(bus.SubjectRegistryCreate, `{"server_name":"web","url":"https://x.example.com/mcp","transport":"http","command":"sh"}`)
	if s, _ := r.cache.Get("web"); s.Command != "" || s.Transport != "http" {
		t.Fatalf("stdio keys kept on an http server: %+v", s)
	}
}

func TestStdioAllowedFromAPI(t *testing.T) {
	r := startRegistry(t, registry.Options{AllowStdioFromAPI: true})
	out := r.mustCall(bus.SubjectRegistryCreate, `{"server_name":"local","command":"npx","args":["-y","srv","--token","arg-secret"],"env":{"TOKEN":"env-secret"}}`)
	raw, _ := json.Marshal(out)
	if out["transport"] != "stdio" || strings.Contains(string(raw), "secret") {
		t.Fatalf("stdio create: %s", raw)
	}
}

func TestUpdate(t *testing.T) {
	r := startRegistry(t, registry.Options{}, bus.ServerSpec{Name: "file", URL: "http://127.0.0.1:1/mcp"},
		bus.ServerSpec{Name: "local", Command: "demo", Transport: "stdio", Args: []string{"--x"}})
	out := r.mustCall(bus.SubjectRegistryCreate, map[string]any{"server_name": "gh", "url": "https://u:pw-secret@api.example.com/mcp?k=q-secret",
		"auth_type": "api_key", "auth_value": "key-secret", "static_headers": map[string]string{"X-A": "a-secret"}})
	rev := uint64(out["revision"].(float64))

	// A read-modify-write round trip: the redacted values sent back keep the stored ones.
	out["description"] = "GitHub"
	out["revision"] = rev
	upd := r.mustCall(bus.SubjectRegistryUpdate, out)
	s, _ := r.cache.Get("gh")
	s, _ = testKey.Open(s)
	if s.Description != "GitHub" || s.AuthValue != "key-secret" || s.StaticHeaders["X-A"] != "a-secret" ||
		s.URL != "https://u:pw-secret@api.example.com/mcp?k=q-secret" || s.Source != "api" {
		t.Fatalf("after round trip: %+v", s)
	}
	newRev := uint64(upd["revision"].(float64))
	if newRev <= rev {
		t.Fatalf("revision %d after %d", newRev, rev)
	}

	// A stale revision is refused with both revisions named.
	_, e := r.call(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "description": "x", "revision": rev})
	wantErr(t, e, bus.ErrConflict, fmt.Sprintf("server 'gh' was changed by someone else (revision %d, you sent %d)", newRev, rev))

	// Partial update without a revision: only the fields sent change; null clears.
	r.mustCall(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "description": nil, "timeout": "1.5"})
	s, _ = r.cache.Get("gh")
	s, _ = testKey.Open(s)
	if s.Description != "" || s.Timeout != "1.5s" || s.AuthValue != "key-secret" {
		t.Fatalf("after partial update: %+v", s)
	}
	_, e = r.call(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "url": "notaurl"})
	wantErr(t, e, bus.ErrBadRequest, "mcp_servers.gh.url: must be an http(s) URL")
	_, e = r.call(bus.SubjectRegistryUpdate, map[string]any{"server_id": "nope", "description": "x"})
	wantErr(t, e, bus.ErrNotFound, "MCP server 'nope' does not exist")

	// Config-file servers may be edited; they stay the file's.
	r.mustCall(bus.SubjectRegistryUpdate, map[string]any{"server_id": "file", "description": "edited"})
	if s, _ := r.cache.Get("file"); s.Source != "config" || s.Description != "edited" {
		t.Fatalf("config server after update: %+v", s)
	}
	// A config stdio server: editing around what it runs is fine, changing it is not.
	r.mustCall(bus.SubjectRegistryUpdate, map[string]any{"server_id": "local", "timeout": 5, "args": []string{bus.Redacted}})
	_, e = r.call(bus.SubjectRegistryUpdate, map[string]any{"server_id": "local", "command": "sh"})
	wantErr(t, e, bus.ErrForbidden, "mcp_allow_stdio_servers_from_api")
	// Nor may an HTTP server be turned into a stdio one.
	_, e = r.call(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "transport": "stdio", "command": "sh"})
	wantErr(t, e, bus.ErrForbidden)

	// Delete with a stale revision is refused too.
	cur := r.mustCall(bus.SubjectRegistryGet, bus.ServerRef{Name: "gh"})
	old := uint64(1)
	_, e = r.call(bus.SubjectRegistryDelete, bus.ServerRef{Name: "gh", Revision: &old})
	wantErr(t, e, bus.ErrConflict, fmt.Sprintf("(revision %d, you sent 1)", uint64(cur["revision"].(float64))))
}

// A server's access groups can be changed by an update, under either
// spelling; sending both spellings at once is refused.
func TestUpdateAccessGroups(t *testing.T) {
	r := startRegistry(t, registry.Options{})
	r.mustCall(bus.SubjectRegistryCreate, map[string]any{"server_name": "gh", "url": "https://api.example.com/mcp", "access_groups": []string{"dev"}})
	r.mustCall(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "access_groups": []string{"ops", "dev"}})
	if s, _ := r.cache.Get("gh"); !slices.Equal(s.AccessGroups, []string{"ops", "dev"}) {
		t.Fatalf("access groups after update: %q", s.AccessGroups)
	}
	r.mustCall(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "mcp_access_groups": []string{"sre"}})
	if s, _ := r.cache.Get("gh"); !slices.Equal(s.AccessGroups, []string{"sre"}) {
		t.Fatalf("access groups after update as mcp_access_groups: %q", s.AccessGroups)
	}
	_, e := r.call(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "access_groups": []string{"a"}, "mcp_access_groups": []string{"b"}})
	wantErr(t, e, bus.ErrBadRequest, "give the access groups once: access_groups or mcp_access_groups")
}

// Concurrent updates without a revision never lose a write silently: each
// either lands or is refused with CONFLICT.
func TestConcurrentUpdatesAreNotLost(t *testing.T) {
	r := startRegistry(t, registry.Options{})
	r.mustCall(bus.SubjectRegistryCreate, map[string]any{"server_name": "gh", "url": "https://api.example.com/mcp"})
	var wg sync.WaitGroup
	var mu sync.Mutex
	landed := map[string]bool{}
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tool := fmt.Sprintf("t%d", i)
			// Each writer reads the list, adds its tool and writes it back with the revision it read.
			for range 20 {
				cur := r.mustCall(bus.SubjectRegistryGet, bus.ServerRef{Name: "gh"})
				var tools []string
				for _, x := range asList(cur["allowed_tools"]) {
					tools = append(tools, x)
				}
				_, e := r.call(bus.SubjectRegistryUpdate, map[string]any{"server_id": "gh", "allowed_tools": append(tools, tool), "revision": cur["revision"]})
				if e == nil {
					mu.Lock()
					landed[tool] = true
					mu.Unlock()
					return
				}
				if e.Kind != bus.ErrConflict {
					t.Errorf("update: %v", e)
					return
				}
			}
		}()
	}
	wg.Wait()
	s, _ := r.cache.Get("gh")
	for tool := range landed {
		found := false
		for _, x := range s.AllowedTools {
			found = found || x == tool
		}
		if !found {
			t.Fatalf("update adding %s was answered OK but is lost: %v", tool, s.AllowedTools)
		}
	}
}

func asList(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

func TestWritesWithoutStore(t *testing.T) {
	nc := bustest.Conn(t, bustest.Server(t))
	svc, err := registry.Start(nc, nil, registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Stop()
	msg, _ := nc.Request(bus.SubjectRegistryCreate, []byte(`{"server_name":"x","url":"https://x.example.com/mcp"}`), time.Second)
	if e := bus.ReplyError(msg); e == nil || e.Kind != bus.ErrServiceUnavailable {
		t.Fatalf("create without a store: %v", e)
	}
	msg, _ = nc.Request(bus.SubjectAgentCreate, []byte(`{"body":{}}`), time.Second)
	if e := bus.ReplyError(msg); e == nil || e.Kind != bus.ErrServiceUnavailable {
		t.Fatalf("agent create without a store: %v", e)
	}
}
