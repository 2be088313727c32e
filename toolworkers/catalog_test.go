package toolworkers

import (
	"bytes"
	"context"
	"encoding/json"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func toolNames(t *testing.T, result json.RawMessage) []string {
	t.Helper()
	var r struct {
		Tools []struct{ Name string }
	}
	if err := json.Unmarshal(result, &r); err != nil {
		t.Fatalf("tools/list result: %v: %s", err, result)
	}
	var names []string
	for _, tl := range r.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// The second tools/list is answered from the worker's cache: the upstream
// sees one, and both answers carry the same bytes (the caller's id aside).
// Calls that are not cached (tools/call) and list errors (never cached) reach
// the upstream every time.
func TestCatalogCacheHit(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", "")
	first := e.request(t, client, "tools/list", `{}`, 1)
	second := e.request(t, client, "tools/list", "", 2)
	if first.gwErr != nil || second.gwErr != nil || first.rpcErr != nil {
		t.Fatalf("lists: %s / %s", first.raw, second.raw)
	}
	if n := e.up.count("tools/list"); n != 1 {
		t.Fatalf("upstream got %d tools/list, want 1 (the second from the cache)", n)
	}
	if !bytes.Equal(first.result, second.result) {
		t.Fatalf("cached answer differs:\n%s\n%s", first.result, second.result)
	}
	if !strings.HasPrefix(string(second.raw), `{"jsonrpc":"2.0","id":2,`) {
		t.Fatalf("cached answer has not the caller's id: %s", second.raw)
	}
	for range 2 {
		e.toolText(t, client, "echo")
	}
	if n := e.up.count("tools/call"); n != 2 {
		t.Fatalf("upstream got %d tools/call, want 2", n)
	}
	// A bad cursor is an upstream error: not cached, each one goes upstream.
	for range 2 {
		if a := e.request(t, client, "tools/list", `{"cursor":"no-such-cursor"}`, 3); a.rpcErr == nil {
			t.Fatalf("a bad cursor was answered: %s", a.raw)
		}
	}
	if n := e.up.count("tools/list"); n != 3 {
		t.Fatalf("upstream got %d tools/list after two failing ones, want 3", n)
	}
	if got := testutil.ToFloat64(e.metrics.cache.WithLabelValues(relayServer, "tools/list", cacheHit)); got != 1 {
		t.Errorf("cache hits counted %v, want 1", got)
	}
	// Usage and metrics still count every call, the cached one too.
	if got := testutil.ToFloat64(e.metrics.calls.WithLabelValues(relayServer, "tools/list", "", "ok", "stable")); got != 2 {
		t.Errorf("tools/list calls counted %v, want 2", got)
	}
}

// The caller's filters apply after the cache: two keys with different tool
// permissions share one upstream list and each sees its own tools.
func TestCatalogFiltersApplyPerCaller(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	all := caller("s1", "k1", "")
	limited := caller("s2", "k2", "")
	limited.Caller.Permissions = bus.Permissions{AllServers: true, Tools: map[string][]string{relayServer: {"echo"}}}
	a := e.request(t, all, "tools/list", `{}`, 1)
	b := e.request(t, limited, "tools/list", `{}`, 1)
	if got := toolNames(t, b.result); len(got) != 1 || got[0] != "echo" {
		t.Fatalf("limited key sees %v, want [echo]", got)
	}
	if got := toolNames(t, a.result); len(got) < 5 {
		t.Fatalf("unlimited key sees %v", got)
	}
	if n := e.up.count("tools/list"); n != 1 {
		t.Fatalf("upstream got %d tools/list, want 1", n)
	}
}

// When the upstream's tool list changes it says so on its GET stream: the
// cache drops the list (the next one shows the new tool) and the notification
// goes to the server's notify subject for routers and ingresses.
func TestCatalogListChangedInvalidates(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	notes := e.subscribeChan(t, bus.NotifySubject(relayServer))
	client := caller("s1", "k1", "")
	e.openGETStream(t, client)
	before := toolNames(t, e.request(t, client, "tools/list", `{}`, 1).result)
	mcp.AddTool(e.up.srv, &mcp.Tool{Name: "added"}, func(context.Context, *mcp.CallToolRequest, noArgs) (*mcp.CallToolResult, any, error) {
		return text("new"), nil, nil
	})
	m, err := recv(notes, 5*time.Second)
	if err != nil {
		t.Fatal("no notification on the notify subject after the upstream's list changed")
	}
	var note bus.Message
	if json.Unmarshal(m.Data, &note) != nil || note.Method != "notifications/tools/list_changed" {
		t.Fatalf("notify subject got %s", m.Data)
	}
	after := toolNames(t, e.request(t, client, "tools/list", `{}`, 2).result)
	if len(after) != len(before)+1 || !strings.Contains(strings.Join(after, ","), "added") {
		t.Fatalf("tools after the change %v, before %v", after, before)
	}
	if n := e.up.count("tools/list"); n != 2 {
		t.Fatalf("upstream got %d tools/list, want 2", n)
	}
}

// Twenty callers asking for the list at once, before anything is cached,
// cause one upstream call. The upstream holds that call until the other
// nineteen have joined it, so they overlap however slow the machine is.
func TestCatalogConcurrentFirstListsShareOneFetch(t *testing.T) {
	up := newRelayUpstream(t)
	up.listHold = make(chan struct{})
	release := sync.OnceFunc(func() { close(up.listHold) })
	e := newRelayEnv(t, up)
	// Registered after the upstream's Close, so it runs before it.
	t.Cleanup(release)
	e.toolText(t, caller("s0", "k0", ""), "echo") // open the session first
	var wg sync.WaitGroup
	results := make([][]byte, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := e.request(t, caller("s1", "k1", ""), "tools/list", `{}`, 7)
			if a.gwErr != nil || a.rpcErr != nil {
				t.Errorf("list %d: %s %v", i, a.raw, a.gwErr)
			}
			results[i] = a.raw
		}()
	}
	joined := func() float64 {
		return testutil.ToFloat64(e.metrics.cache.WithLabelValues(relayServer, "tools/list", cacheJoined))
	}
	// The outcome is counted only when a call ends: count the handlers inside
	// the catalog's fetch instead (the leader, held upstream, and those waiting
	// for it).
	bustest.Eventually(t, 30*time.Second, "all 20 lists are in the catalog's fetch", func() error {
		buf := make([]byte, 4<<20)
		return bustest.Want("goroutines in the catalog's fetch", strings.Count(string(buf[:runtime.Stack(buf, true)]), "toolworkers.(*catalog).fetch("), 20)
	})
	release()
	wg.Wait()
	if n := e.up.count("tools/list"); n != 1 {
		t.Fatalf("upstream got %d tools/list for 20 concurrent callers, want 1", n)
	}
	for i := range results {
		if !bytes.Equal(results[i], results[0]) {
			t.Fatalf("answers differ:\n%s\n%s", results[i], results[0])
		}
	}
	miss := testutil.ToFloat64(e.metrics.cache.WithLabelValues(relayServer, "tools/list", cacheMiss))
	if miss != 1 || joined() != 19 {
		t.Errorf("cache outcomes: %v miss, %v joined", miss, joined())
	}
}

// A new upstream session (the upstream forgot the old one) starts with an
// empty cache: the GET stream notices the session is gone, and the next list
// opens a new session and goes upstream.
func TestCatalogDroppedOnReinitialize(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", "")
	e.request(t, client, "tools/list", `{}`, 1)
	bustest.Eventually(t, 30*time.Second, "the GET stream is open", func() error { return bustest.AtLeast("GETs upstream", e.up.count("GET"), 1) })
	e.endUpstreamSession(t, "tools/list")
	e.request(t, client, "tools/list", `{}`, 2)
	if n := e.up.count("tools/list"); n != 2 {
		t.Fatalf("after a new session upstream got %d tools/list, want 2", n)
	}
	if n := e.up.count("initialize"); n != 2 {
		t.Fatalf("upstream got %d initialize, want 2", n)
	}
}

func TestCatalogKey(t *testing.T) {
	for _, c := range []struct {
		method, params, key string
		ok                  bool
	}{
		{"tools/list", ``, "tools/list\x00", true},
		{"tools/list", `{}`, "tools/list\x00", true},
		{"tools/list", `{"cursor":"abc"}`, "tools/list\x00abc", true},
		{"prompts/list", `{"cursor":"abc","_meta":{"progressToken":1}}`, "prompts/list\x00abc", true},
		{"tools/list", `{"cursor":7}`, "", false},
		{"tools/list", `{"filter":"x"}`, "", false},
		{"tools/call", `{}`, "", false},
	} {
		key, ok := catalogKey(c.method, json.RawMessage(c.params))
		if key != c.key || ok != c.ok {
			t.Errorf("catalogKey(%s, %s) = %q %v, want %q %v", c.method, c.params, key, ok, c.key, c.ok)
		}
	}
}

// Another replica's notice on the notify subject drops this replica's list
// too: the client it reaches may list again here before this replica's own
// upstream session hears of the change.
func TestCatalogInvalidatedByAnotherReplicasNotice(t *testing.T) {
	e := newRelayEnv(t, newRelayUpstream(t))
	client := caller("s1", "k1", "")
	e.request(t, client, "tools/list", `{}`, 1)
	e.request(t, client, "prompts/list", `{}`, 1)
	if err := e.nc.Publish(bus.NotifySubject(relayServer), bus.Notification("notifications/tools/list_changed", nil)); err != nil {
		t.Fatal(err)
	}
	bustest.Eventually(t, 30*time.Second, "the cached tools/list is dropped", func() error {
		e.request(t, client, "tools/list", `{}`, 2)
		return bustest.Want("tools/list upstream", e.up.count("tools/list"), 2)
	})
	e.request(t, client, "prompts/list", `{}`, 2)
	if n := e.up.count("prompts/list"); n != 1 {
		t.Fatalf("prompts/list fetched %d times; a tools change must not drop it", n)
	}
}

// A list whose server bounds its freshness (ttlMs, MCP 2026-07-28) is kept
// no longer than that, even when list_changed would keep it longer; one
// with none, or 0, is kept as before.
func TestCatalogHonoursTTL(t *testing.T) {
	var c catalog
	listChanged := func() bool { return true }
	for _, tc := range []struct {
		result string
		within time.Duration // 0: no expiry
	}{
		{`{"tools":[],"ttlMs":30000}`, 30 * time.Second},
		{`{"tools":[],"ttlMs":0}`, 0},
		{`{"tools":[]}`, 0},
	} {
		c.reset()
		before := time.Now()
		_, _, err := c.fetch(context.Background(), "tools/list\x00", "tools/list", func() (*bus.Message, error) {
			return &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(`1`), Result: json.RawMessage(tc.result)}, nil
		}, listChanged)
		if err != nil {
			t.Fatal(err)
		}
		c.mu.Lock()
		e := c.entries["tools/list\x00"]
		c.mu.Unlock()
		if e == nil {
			t.Fatalf("%s: not cached", tc.result)
		}
		switch {
		case tc.within == 0 && !e.expires.IsZero():
			t.Errorf("%s: expires %v, want kept until invalidated", tc.result, e.expires)
		case tc.within > 0 && (e.expires.Before(before.Add(tc.within)) || e.expires.After(time.Now().Add(tc.within))):
			t.Errorf("%s: expires %v, want %v after the fetch", tc.result, e.expires.Sub(before), tc.within)
		}
	}
}

// A hit answers with the ttlMs left of the upstream's, not the upstream's
// whole: a client must not keep a list longer than the gateway may. A
// result without ttlMs is answered as it came.
func TestCatalogHitAnswersTheTTLLeft(t *testing.T) {
	var c catalog
	listChanged := func() bool { return true }
	get := func(result string) *bus.Message {
		t.Helper()
		msg, _, err := c.fetch(context.Background(), "tools/list\x00", "tools/list", func() (*bus.Message, error) {
			return &bus.Message{JSONRPC: "2.0", ID: json.RawMessage(`1`), Result: json.RawMessage(result)}, nil
		}, listChanged)
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}
	if first := get(`{"tools":[],"ttlMs":30000}`); string(first.Result) != `{"tools":[],"ttlMs":30000}` {
		t.Fatalf("the fetch answered %s", first.Result)
	}
	c.mu.Lock()
	e := c.entries["tools/list\x00"]
	// As if the freshness ended in an hour: a hit must say what is left of
	// it, not the upstream's 30000 (far from either bound on any machine).
	e.ttlUntil = time.Now().Add(time.Hour)
	c.mu.Unlock()
	var hit struct {
		TTLMs *int64 `json:"ttlMs"`
	}
	if err := json.Unmarshal(get(`{"tools":[],"ttlMs":99}`).Result, &hit); err != nil || hit.TTLMs == nil || *hit.TTLMs <= 30000 || *hit.TTLMs > 3600000 {
		t.Fatalf("the hit answered ttlMs %v (%v), want what is left of the hour", hit.TTLMs, err)
	}
	if string(e.msg.Result) != `{"tools":[],"ttlMs":30000}` {
		t.Fatalf("the hit changed the cached result: %s", e.msg.Result)
	}
	c.reset()
	get(`{"tools":[]}`)
	if again := get(`{"tools":["x"]}`); string(again.Result) != `{"tools":[]}` {
		t.Fatalf("a hit of a result with no ttlMs answered %s", again.Result)
	}
}
