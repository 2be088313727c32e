package router

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/nats-io/nats.go"
)

// With no selection and two servers, tools/list merges both with prefixed
// names (alias wins over the name), and a call is routed by the exact name to
// its server with the bare name, every other param kept.
func TestAggregatedToolsAreNamespacedAndRouted(t *testing.T) {
	alpha := &fakeWorker{name: "alpha", tools: []string{"echo", "get-time"}}
	beta := &fakeWorker{name: "beta", tools: []string{"echo"}}
	specs := servers("alpha", "beta")
	specs[1].Alias = "b"
	h := startHarness(t, Options{}, specs, alpha, beta)

	var l listed
	h.result(internal(), request(1, "tools/list", ""), &l)
	var names []string
	for _, tool := range l.Tools {
		names = append(names, tool.Name+"="+tool.Description)
	}
	want := []string{"alpha__echo=alpha echo <&>", "alpha__get-time=alpha get-time <&>", "b__echo=beta echo <&>"}
	if raw, _ := h.send(internal(), request(1, "tools/list", "")); !strings.Contains(string(raw.Result), "echo <&>") {
		t.Errorf("descriptions are re-escaped: %s", raw.Result)
	}
	if fmt.Sprint(names) != fmt.Sprint(want) || l.NextCursor != "" || l.Meta != nil {
		t.Fatalf("tools/list: %v (cursor %q, meta %v), want %v", names, l.NextCursor, l.Meta, want)
	}
	for name, server := range map[string]string{"alpha__echo": "alpha", "b__echo": "beta", "alpha__get-time": "alpha"} {
		var c called
		h.result(internal(), request(2, "tools/call", `{"name":"`+name+`","arguments":{"x":1},"_meta":{"progressToken":"p1"}}`), &c)
		var p map[string]any
		json.Unmarshal(c.Params, &p)
		bare := name[strings.Index(name, "__")+2:]
		if c.Server != server || p["name"] != bare || fmt.Sprint(p["arguments"]) != "map[x:1]" || fmt.Sprint(p["_meta"]) != "map[progressToken:p1]" {
			t.Errorf("call %s reached %s with %s, want %s with name %q and the other params unchanged", name, c.Server, c.Params, server, bare)
		}
	}
	msg, e := h.send(internal(), request(3, "tools/call", `{"name":"alpha__nope"}`))
	if e == nil || e.Kind != bus.ErrInvalidParams || !strings.Contains(e.Message, `"alpha__nope"`) {
		t.Fatalf("unknown tool: %v %v, want -32602 naming it", msg, e)
	}
}

// A single selected server (x-mcp-servers with one name, or the only usable
// server) keeps bare names and gets the request byte for byte.
func TestSingleServerIsForwardedUntouched(t *testing.T) {
	alpha := &fakeWorker{name: "alpha", tools: []string{"echo"}}
	beta := &fakeWorker{name: "beta", tools: []string{"echo"}}
	h := startHarness(t, Options{}, servers("alpha", "beta"), alpha, beta)
	env := internal()
	env.Servers = []string{"beta"}
	var l listed
	h.result(env, request(1, "tools/list", ""), &l)
	if len(l.Tools) != 1 || l.Tools[0].Name != "echo" {
		t.Fatalf("one selected server: %+v, want its bare names", l.Tools)
	}
	body := `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo",  "arguments":{}}}`
	var c called
	h.result(env, body, &c)
	if c.Server != "beta" {
		t.Fatalf("reached %s", c.Server)
	}
	// Permissions that narrow no selection to one server do not change the
	// names: they stay prefixed, as when the key is given a second server.
	only := internal()
	only.Caller.Permissions = bus.Permissions{Servers: []string{"alpha"}}
	h.result(only, request(1, "tools/list", ""), &l)
	if len(l.Tools) != 1 || l.Tools[0].Name != "alpha__echo" {
		t.Fatalf("one permitted server: %+v, want its prefixed names", l.Tools)
	}
	h.result(only, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"alpha__echo","arguments":{}}}`, &c)
	if c.Server != "alpha" || !strings.Contains(string(c.Params), `"name":"echo"`) {
		t.Fatalf("a prefixed call with one permitted server reached %s with %s", c.Server, c.Params)
	}
	// An unknown method goes to the one server; aggregated it is refused.
	var u called
	h.result(env, request(8, "tasks/list", ""), &u)
	if u.Server != "beta" || u.Method != "tasks/list" {
		t.Fatalf("tasks/list to one server: %+v", u)
	}
	if _, e := h.send(internal(), request(9, "tasks/list", "")); e == nil || e.Kind != bus.ErrMethodNotFound || !strings.Contains(e.Message, "tasks/list") {
		t.Fatalf("tasks/list aggregated: %v, want -32601 naming it", e)
	}
}

// x-mcp-servers: a,b aggregates exactly those; a hidden or unknown one is an
// error naming it.
func TestSelectionOfSeveralServers(t *testing.T) {
	ws := []*fakeWorker{{name: "a", tools: []string{"t"}}, {name: "b", tools: []string{"t"}}, {name: "c", tools: []string{"t"}}}
	specs := servers("a", "b", "c")
	h := startHarness(t, Options{}, specs, ws...)
	env := internal()
	env.Servers = []string{"c", "a"}
	var l listed
	h.result(env, request(1, "tools/list", ""), &l)
	if len(l.Tools) != 2 || l.Tools[0].Name != "a__t" || l.Tools[1].Name != "c__t" {
		t.Fatalf("x-mcp-servers c,a: %+v, want a__t and c__t", l.Tools)
	}
	env.Servers = []string{"a", "zzz"}
	if _, e := h.send(env, request(2, "tools/list", "")); e == nil || e.Kind != bus.ErrUnknownServer || !strings.Contains(e.Message, `"zzz"`) {
		t.Fatalf("unknown server in the selection: %v", e)
	}
	env.Servers = []string{"a", "b"}
	env.Caller.Permissions = bus.Permissions{Servers: []string{"a"}}
	if _, e := h.send(env, request(3, "tools/list", "")); e == nil || e.Kind != bus.ErrNotPermitted || !strings.Contains(e.Message, "'b'") {
		t.Fatalf("unpermitted server in the selection: %v", e)
	}
}

// Pages: the router's cursor carries each server's own; walking it yields
// every tool exactly once, asking only servers with more pages; a cursor that
// is garbage, for another list, or names another server is -32602.
func TestAggregatedPagination(t *testing.T) {
	a := &fakeWorker{name: "a", pageSize: 2, tools: []string{"t1", "t2", "t3", "t4", "t5"}}
	b := &fakeWorker{name: "b", pageSize: 2, tools: []string{"u1", "u2", "u3"}}
	c := &fakeWorker{name: "c", tools: []string{"v1"}}
	h := startHarness(t, Options{}, servers("a", "b", "c"), a, b, c)
	seen := map[string]int{}
	cursor, pages := "", 0
	for {
		params := ""
		if cursor != "" {
			params = `{"cursor":"` + cursor + `"}`
		}
		var l listed
		h.result(internal(), request(pages, "tools/list", params), &l)
		pages++
		for _, tool := range l.Tools {
			seen[tool.Name]++
		}
		if l.NextCursor == "" {
			break
		}
		cursor = l.NextCursor
		if pages > 10 {
			t.Fatal("pagination does not end")
		}
	}
	if len(seen) != 9 || pages != 3 {
		t.Fatalf("walked %d pages and saw %v, want all 9 tools in 3 pages", pages, seen)
	}
	for name, n := range seen {
		if n != 1 {
			t.Errorf("%s listed %d times", name, n)
		}
	}
	if n := c.listCount("tools/list"); n != 1 {
		t.Errorf("server c (one page) was listed %d times, want only on the first page", n)
	}
	if n := b.listCount("tools/list"); n != 2 {
		t.Errorf("server b (two pages) was listed %d times", n)
	}
	other := encodeCursor("prompts/list", map[string]string{"a": "2"})
	stranger := encodeCursor("tools/list", map[string]string{"zzz": "2"})
	for _, bad := range []string{"garbage!", "bm90IGpzb24", other, stranger, encodeCursor("tools/list", nil)} {
		_, e := h.send(internal(), request(50, "tools/list", `{"cursor":"`+bad+`"}`))
		if e == nil || e.Kind != bus.ErrInvalidParams || !strings.Contains(e.Message, "invalid cursor") {
			t.Errorf("cursor %q: %v, want -32602 invalid cursor", bad, e)
		}
	}
}

// A server that hangs or fails is left out of the list, named in _meta and in
// a warning on the caller's stream; the others come back within the limit.
// The hung server's leg ends at its limit, the lesser of its own timeout and
// ListTimeout (its error names the limit); the answering servers have all of
// a generous ListTimeout, so how fast they answer decides nothing. When every
// server fails the list fails, naming them all; there the hung leg ends at a
// short ListTimeout, not at the server's default 60 s, which the harness's
// 10 s wait would not reach.
func TestAggregatedListPartialFailure(t *testing.T) {
	ok := &fakeWorker{name: "ok", tools: []string{"t"}}
	hung := &fakeWorker{name: "hung", tools: []string{"t"}, hang: true}
	broken := &fakeWorker{name: "broken", tools: []string{"t"}, fail: map[string]string{"tools/list": "database is down"}}
	specs := servers("broken", "hung", "ok")
	specs[1].Timeout = "300ms"
	h := startHarness(t, Options{ListTimeout: 30 * time.Second}, specs, ok, hung, broken)

	stream := nats.NewInbox()
	notes, _ := h.nc.SubscribeSync(bus.ClientSubject(stream, bus.GatewayToken))
	env := internal()
	env.Stream = stream
	var l listed
	h.result(env, request(1, "tools/list", ""), &l)
	if len(l.Tools) != 1 || l.Tools[0].Name != "ok__t" {
		t.Fatalf("tools: %+v, want the answering server's", l.Tools)
	}
	failed := map[string]bus.PartialFailure{}
	for _, f := range l.Meta[bus.MetaPartial] {
		failed[f.Server] = f
	}
	if f := failed["hung"]; f.Code != bus.ErrUpstreamTimeout.Code || !strings.Contains(f.Message, `"hung" did not answer within 300ms`) {
		t.Errorf("hung server in _meta: %+v", f)
	}
	if f := failed["broken"]; f.Code != bus.ErrUpstreamUnavailable.Code || !strings.Contains(f.Message, "database is down") {
		t.Errorf("broken server in _meta: %+v", f)
	}
	got := map[string]bool{}
	for range 2 {
		m, err := notes.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("stream warnings: %v", err)
		}
		var n struct {
			Method string
			Params struct {
				Level, Logger string
				Data          map[string]string
			}
		}
		json.Unmarshal(m.Data, &n)
		if n.Method != "notifications/message" || n.Params.Level != "warning" || n.Params.Logger != "mcpbus" {
			t.Errorf("stream message %s", m.Data)
		}
		got[n.Params.Data["server"]] = true
	}
	if !got["hung"] || !got["broken"] {
		t.Errorf("stream warnings named %v", got)
	}
	if !strings.Contains(h.logs.String(), "server=hung") {
		t.Error("the missing server is not logged")
	}

	h = startHarness(t, Options{ListTimeout: 300 * time.Millisecond}, servers("broken", "hung"), hung, broken)
	env = internal()
	env.Servers = []string{"broken", "hung"}
	_, e := h.send(env, request(2, "tools/list", ""))
	if e == nil || e.Kind != bus.ErrUpstreamUnavailable || !strings.Contains(e.Message, "broken:") || !strings.Contains(e.Message, "hung:") {
		t.Fatalf("every server failing: %v, want an error naming both", e)
	}
	if !strings.Contains(e.Message, `"hung" did not answer within 300ms`) {
		t.Errorf("every server failing: %v, want the hung leg ended at ListTimeout", e)
	}
}

// A server without prompts (-32601) contributes an empty list, not a failure.
func TestListMethodNotFoundIsEmpty(t *testing.T) {
	a := &fakeWorker{name: "a", prompts: []string{"greet"}}
	b := &fakeWorker{name: "b"}
	h := startHarness(t, Options{}, servers("a", "b"), a, b)
	var l listed
	h.result(internal(), request(1, "prompts/list", ""), &l)
	if len(l.Prompts) != 1 || l.Prompts[0].Name != "a__greet" || l.Meta != nil {
		t.Fatalf("prompts: %+v meta %v", l.Prompts, l.Meta)
	}
	var c called
	h.result(internal(), request(2, "prompts/get", `{"name":"a__greet","arguments":{"name":"x"}}`), &c)
	if c.Server != "a" || !strings.Contains(string(c.Params), `"name":"greet"`) {
		t.Fatalf("prompts/get: %+v", c)
	}
}

// With separator '-' (LiteLLM), servers "a" and "a-b" make "a-b-x" ambiguous:
// tool "b-x" of a and "x" of a-b. The first by server keeps the name, the
// other gets a hash suffix; both are listed and each routes to its own
// server, on every list alike.
func TestCollisionsAreSettledDeterministically(t *testing.T) {
	a := &fakeWorker{name: "a", tools: []string{"b-x", "y"}}
	ab := &fakeWorker{name: "a-b", tools: []string{"x"}}
	h := startHarness(t, Options{Separator: "-"}, servers("a", "a-b"), a, ab)
	var first, second listed
	h.result(internal(), request(1, "tools/list", ""), &first)
	h.result(internal(), request(2, "tools/list", ""), &second)
	var names []string
	for i, tool := range first.Tools {
		names = append(names, tool.Name)
		if second.Tools[i].Name != tool.Name {
			t.Errorf("names differ between two lists: %q, %q", tool.Name, second.Tools[i].Name)
		}
	}
	if len(names) != 3 || names[0] != "a-b-x" || names[1] != "a-y" || !strings.HasPrefix(names[2], "a-b-x_") || len(names[2]) != len("a-b-x_")+8 {
		t.Fatalf("names %v, want a-b-x (server a), a-y, a-b-x_<hash> (server a-b)", names)
	}
	for name, want := range map[string]string{names[0]: "a", names[2]: "a-b"} {
		var c called
		h.result(internal(), request(3, "tools/call", `{"name":"`+name+`"}`), &c)
		if c.Server != want {
			t.Errorf("%s went to %s, want %s", name, c.Server, want)
		}
	}
	if !strings.Contains(h.logs.String(), "have the same name") {
		t.Error("the collision is not logged")
	}
}

// Name rules: [A-Za-z0-9_.-], at most 64, stable; a name that needed
// changes never takes the name of one that did not.
func TestExposedNames(t *testing.T) {
	ns := namespace("github", "__")
	if got := exposedName(ns, "github", "__", "create-issue.v2"); got != "github__create-issue.v2" {
		t.Errorf("plain name: %q", got)
	}
	odd := exposedName(ns, "github", "__", "search repos/ü")
	if !strings.HasPrefix(odd, "github__search_repos__") || len(odd) != len("github__search_repos__")+9 {
		t.Errorf("cleaned name: %q", odd)
	}
	if odd == exposedName(ns, "github", "__", "search_repos__") {
		t.Error("a cleaned name took a valid one's name")
	}
	long := strings.Repeat("very_long_tool_name_", 5)
	a, b := exposedName(ns, "github", "__", long+"one"), exposedName(ns, "github", "__", long+"two")
	if len(a) != 64 || len(b) != 64 || a == b || a[:55] != ("github__" + long)[:55] {
		t.Errorf("shortened: %q, %q", a, b)
	}
	if a != exposedName(ns, "github", "__", long+"one") {
		t.Error("shortening is not stable")
	}
	for _, n := range []string{odd, a, b, exposedName(namespace("my server", "/"), "my server", "/", "x")} {
		for _, c := range []byte(n) {
			if !nameChar(c) {
				t.Errorf("%q has %q", n, c)
			}
		}
	}
	// assign: the same set in any order gives the same names.
	pairs := []pair{{"a", "b-x"}, {"a-b", "x"}, {"a", "y"}}
	nameOf := func(p pair) string { return exposedName(namespace(p.server, "-"), p.server, "-", p.name) }
	n1, _, _ := assign(append([]pair(nil), pairs...), nameOf)
	rev := []pair{pairs[2], pairs[1], pairs[0]}
	n2, _, renamed := assign(rev, nameOf)
	if fmt.Sprint(n1) != fmt.Sprint(n2) || len(renamed) != 1 || renamed[0] != (pair{"a-b", "x"}) {
		t.Errorf("assign: %v vs %v, renamed %v", n1, n2, renamed)
	}
	if !ambiguous([]string{"a-", "a-b-"}) || ambiguous([]string{"a__", "b__", "ab__"}) {
		t.Error("ambiguous")
	}
	// The examples of docs/AGGREGATION.md.
	for name, want := range map[string]string{
		"search repos": "github__search_repos_8a05b80c",
		"summarize_the_quarterly_financial_report_for_the_board_of_directors_v2": "beta__summarize_the_quarterly_financial_report_for_the__f401d34c",
	} {
		prefix := "github"
		if strings.HasPrefix(name, "summarize") {
			prefix = "beta"
		}
		if got := exposedName(namespace(prefix, "__"), prefix, "__", name); got != want {
			t.Errorf("%s: %q, docs say %q", name, got, want)
		}
	}
}

// Resources route by exact URI, then by template; an unknown URI is -32602
// naming it. completion/complete routes by its ref.
func TestResourcesAndCompletionRouting(t *testing.T) {
	docs := &fakeWorker{name: "docs", resources: []string{"file:///readme", "shared://x"}, templates: []string{"file:///{path}"}, prompts: []string{"summarize"}}
	db := &fakeWorker{name: "db", resources: []string{"shared://x"}, templates: []string{"db://{table}/rows{?limit}", "db://{+path}/raw"}, prompts: []string{"query"}}
	h := startHarness(t, Options{}, servers("db", "docs"), docs, db)
	var l listed
	h.result(internal(), request(1, "resources/list", ""), &l)
	if len(l.Resources) != 2 || l.Resources[0].URI != "shared://x" {
		t.Errorf("resources/list: %+v, want db's shared://x, then docs' readme (the shared URI once)", l.Resources)
	}
	for uri, want := range map[string]string{
		"file:///readme": "docs", "file:///notes": "docs", "db://users/rows": "db",
		"db://users/rows?limit=5": "db", "db://a/b/c/raw": "db", "shared://x": "db",
	} {
		var c called
		h.result(internal(), request(2, "resources/read", `{"uri":"`+uri+`"}`), &c)
		if c.Server != want || !strings.Contains(string(c.Params), uri) {
			t.Errorf("resources/read %s went to %s (%s), want %s", uri, c.Server, c.Params, want)
		}
	}
	var sub called
	h.result(internal(), request(3, "resources/subscribe", `{"uri":"file:///readme"}`), &sub)
	if sub.Server != "docs" || sub.Method != "resources/subscribe" {
		t.Errorf("subscribe: %+v", sub)
	}
	if _, e := h.send(internal(), request(4, "resources/read", `{"uri":"nope://x/y"}`)); e == nil || e.Kind != bus.ErrInvalidParams || !strings.Contains(e.Message, `"nope://x/y"`) {
		t.Errorf("unknown URI: %v", e)
	}
	var c called
	h.result(internal(), request(5, "completion/complete", `{"ref":{"type":"ref/prompt","name":"docs__summarize"},"argument":{"name":"a","value":"b"}}`), &c)
	if c.Server != "docs" || !strings.Contains(string(c.Params), `"name":"summarize"`) || !strings.Contains(string(c.Params), `"argument"`) {
		t.Errorf("completion by prompt: %+v", c)
	}
	h.result(internal(), request(6, "completion/complete", `{"ref":{"type":"ref/resource","uri":"db://{table}/rows{?limit}"},"argument":{"name":"table","value":"u"}}`), &c)
	if c.Server != "db" {
		t.Errorf("completion by template: %+v", c)
	}
	if _, e := h.send(internal(), request(7, "completion/complete", `{"ref":{"type":"ref/prompt","name":"nope"}}`)); e == nil || e.Kind != bus.ErrInvalidParams {
		t.Errorf("completion of an unknown prompt: %v", e)
	}
}

// The router fetches a name map once for concurrent calls, keeps it, and
// drops it when the server announces a change.
func TestNameMapCacheAndInvalidation(t *testing.T) {
	a := &fakeWorker{name: "a", tools: []string{"t"}, listDelay: 100 * time.Millisecond}
	b := &fakeWorker{name: "b", tools: []string{"u"}, listDelay: 100 * time.Millisecond}
	h := startHarness(t, Options{}, servers("a", "b"), a, b)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg, e := h.send(internal(), request(i, "tools/call", `{"name":"b__u"}`))
			if e != nil || !strings.Contains(string(msg.Result), `"server":"b"`) {
				t.Errorf("call %d: %v %v", i, msg, e)
			}
		}()
	}
	wg.Wait()
	if n, m := a.listCount("tools/list"), b.listCount("tools/list"); n != 1 || m != 1 {
		t.Fatalf("20 concurrent calls listed a %d and b %d times, want once each", n, m)
	}
	h.send(internal(), request(30, "tools/call", `{"name":"a__t"}`))
	if n := a.listCount("tools/list"); n != 1 {
		t.Fatalf("a cached map was listed again (%d)", n)
	}
	h.nc.Publish(bus.NotifySubject("a"), bus.Notification("notifications/tools/list_changed", nil))
	h.nc.Flush()
	// Calls use the kept map until the router has the notification; the
	// first one after it lists a again.
	bustest.Eventually(t, 30*time.Second, "a call after a's list_changed lists a again", func() error {
		h.send(internal(), request(31, "tools/call", `{"name":"a__t"}`))
		return bustest.AtLeast("tools/list to a", a.listCount("tools/list"), 2)
	})
	h.send(internal(), request(32, "tools/call", `{"name":"a__t"}`))
	if n, m := a.listCount("tools/list"), b.listCount("tools/list"); n != 2 || m != 1 {
		t.Fatalf("after a's list_changed: a listed %d, b %d times; want a again, b not", n, m)
	}
}

// Capabilities of an aggregation are the union of the servers'.
func TestAggregatedInitialize(t *testing.T) {
	a := &fakeWorker{name: "a", caps: `{"tools":{"listChanged":true},"logging":{}}`}
	b := &fakeWorker{name: "b", caps: `{"tools":{},"resources":{"subscribe":true},"prompts":{},"completions":{},"experimental":{"x":{}}}`}
	h := startHarness(t, Options{}, servers("a", "b"), a, b)
	var res struct {
		ProtocolVersion string
		Capabilities    map[string]map[string]any
		ServerInfo      struct{ Name string }
	}
	h.result(internal(), request(1, "initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`), &res)
	var keys []string
	for k := range res.Capabilities {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if res.ProtocolVersion != "2025-06-18" || res.ServerInfo.Name != "mcpbus" || fmt.Sprint(keys) != "[completions logging prompts resources tools]" ||
		res.Capabilities["tools"]["listChanged"] != true || res.Capabilities["resources"]["subscribe"] != true {
		t.Fatalf("initialize: %+v", res)
	}
}

// logging/setLevel reaches every server: {} when one took it, an error
// naming each failure when none did.
func TestSetLevelFansOut(t *testing.T) {
	a := &fakeWorker{name: "a"}
	b := &fakeWorker{name: "b", fail: map[string]string{"logging/setLevel": "no logging here"}}
	h := startHarness(t, Options{}, servers("a", "b"), a, b)
	var res map[string]any
	h.result(internal(), request(1, "logging/setLevel", `{"level":"error"}`), &res)
	if m, _ := a.last("logging/setLevel"); m == nil || len(res) != 0 {
		t.Fatalf("setLevel: a got %v, result %v", m, res)
	}
	if m, _ := b.last("logging/setLevel"); m == nil {
		t.Fatal("b did not get setLevel")
	}
	a.setFail("logging/setLevel", "nor here")
	_, e := h.send(internal(), request(2, "logging/setLevel", `{"level":"error"}`))
	if e == nil || !strings.Contains(e.Message, "no logging here") || !strings.Contains(e.Message, "nor here") {
		t.Fatalf("every server failing: %v", e)
	}
}

// Client responses and notifications: a response to a server-to-client
// request goes to the worker that asked, with the envelope; cancellation
// becomes a CancelRequest; roots/list_changed reaches each server's worker;
// the ingress always gets an empty answer.
func TestClientMessages(t *testing.T) {
	a := &fakeWorker{name: "a"}
	b := &fakeWorker{name: "b"}
	h := startHarness(t, Options{}, servers("a", "b"), a, b)
	id := bus.ServerRequestID("a", "w1", 42)
	subject, _ := bus.ServerRequestReplySubject(json.RawMessage(`"` + id + `"`))
	answers, _ := h.nc.SubscribeSync(subject)
	cancels, _ := h.nc.SubscribeSync(bus.SubjectCancelRequest)
	h.nc.Flush()
	env := internal()
	env.Session = "sess-1"
	body := `{"jsonrpc":"2.0","id":"` + id + `","result":{"action":"accept"}}`
	if msg, e := h.send(env, body); msg != nil || e != nil {
		t.Fatalf("response: answer %v %v, want empty", msg, e)
	}
	m, err := answers.NextMsg(10 * time.Second)
	if err != nil || string(m.Data) != body || m.Header.Get(bus.HeaderSession) != "sess-1" {
		t.Fatalf("relayed response: %v %v", m, err)
	}
	if msg, e := h.send(env, `{"jsonrpc":"2.0","id":5,"result":{}}`); msg != nil || e != nil {
		t.Fatalf("stray response: %v %v", msg, e)
	}
	h.send(env, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7,"reason":"user"}}`)
	m, err = cancels.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var c bus.CancelRequest
	json.Unmarshal(m.Data, &c)
	if c.Session != "sess-1" || c.KeyID != "master" || string(c.ID) != "7" || c.Reason != "user" {
		t.Fatalf("cancel request %s", m.Data)
	}
	h.send(env, `{"jsonrpc":"2.0","method":"notifications/roots/list_changed"}`)
	bustest.Eventually(t, 30*time.Second, "roots/list_changed reaches both servers", func() error {
		ma, _ := a.last("notifications/roots/list_changed")
		mb, _ := b.last("notifications/roots/list_changed")
		if ma == nil || mb == nil {
			return fmt.Errorf("reached a: %v, b: %v", ma != nil, mb != nil)
		}
		return nil
	})
	if msg, e := h.send(env, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); msg != nil || e != nil {
		t.Fatalf("initialized: %v %v", msg, e)
	}
}

// The one-server path stays lean: resolving a selected server, or the only
// one a key may use, allocates nothing.
func TestResolveOneServerAllocatesNothing(t *testing.T) {
	h := startHarness(t, Options{}, servers("alpha", "beta"))
	r := &Router{cache: h.cache}
	selected := internal()
	selected.Servers = []string{"beta"}
	for name, env := range map[string]bus.Envelope{"selected": selected} {
		s, many, e := r.resolve(env)
		if e != nil || many != nil || s.Name == "" {
			t.Fatalf("%s: %v %v %v", name, s, many, e)
		}
		if n := testing.AllocsPerRun(100, func() { r.resolve(env) }); n != 0 {
			t.Errorf("%s: resolve allocates %v times", name, n)
		}
	}
}

// A repeated aggregated list is answered from the router's memory (the
// workers are not asked again, from the second list on: the lists the first
// page was merged from do not count as a change) until a server announces a
// list change; a page with a missing server is never kept, so the server is
// asked again.
func TestMergedListPageCached(t *testing.T) {
	a := &fakeWorker{name: "a", tools: []string{"t"}}
	b := &fakeWorker{name: "b", tools: []string{"u"}}
	h := startHarness(t, Options{}, servers("a", "b"), a, b)
	list := func(id int) string {
		msg, e := h.send(internal(), request(id, "tools/list", `{}`))
		if e != nil {
			t.Fatal(e)
		}
		if string(msg.ID) != fmt.Sprint(id) {
			t.Fatalf("answer carries id %s, want %d", msg.ID, id)
		}
		return string(msg.Result)
	}
	first := list(1)
	for i := 2; i < 10; i++ {
		if got := list(i); got != first {
			t.Fatalf("list %d = %s, want the same page %s", i, got, first)
		}
	}
	if n := a.listCount("tools/list"); n != 1 {
		t.Fatalf("9 lists reached worker a %d times in all, want once", n)
	}
	before := a.listCount("tools/list")
	h.nc.Publish(bus.NotifySubject("a"), bus.Notification("notifications/tools/list_changed", nil))
	h.nc.Flush()
	// The kept page answers until the router has the notification; the first
	// list after it reaches a, and the new page is kept again. (The bounds
	// are under the page's 30 s lifetime: only the notification ends it.)
	bustest.Eventually(t, 10*time.Second, "a list after a's list_changed reaches a", func() error {
		list(20)
		return bustest.AtLeast("tools/list to a", a.listCount("tools/list"), before+1)
	})
	if n := a.listCount("tools/list"); n != before+1 {
		t.Fatalf("after a's list_changed the list reached a %d more times, want 1", n-before)
	}
	b.setFail("tools/list", "down")
	h.nc.Publish(bus.NotifySubject("b"), bus.Notification("notifications/tools/list_changed", nil))
	h.nc.Flush()
	bustest.Eventually(t, 10*time.Second, "a list after b's list_changed finds b failing", func() error {
		if got := list(22); !strings.Contains(got, "mcpbus/unavailable") {
			return fmt.Errorf("the list says nothing of b failing: %s", got)
		}
		return nil
	})
	n := b.listCount("tools/list")
	if !strings.Contains(list(23), "mcpbus/unavailable") || b.listCount("tools/list") == n {
		t.Fatal("a page missing server b was kept: b is never asked again")
	}
}

// The capability lookup of initialize goes with liveness: a request taken by
// a replica that then never acknowledges it (frozen, or lost with its NATS
// node) is sent again within seconds and answered by a live one, instead of
// waiting out InfoTimeout and leaving the server's capabilities out.
func TestInitializeInfoSkipsADeadReplica(t *testing.T) {
	// Without liveness the lookup waits InfoTimeout, then answers without
	// the server's capabilities.
	h := startHarness(t, Options{InfoTimeout: 8 * time.Second}, servers("a"))
	got := make(chan struct{})
	dead, err := h.nc.QueueSubscribe(bus.ToolInfo("a"), "fake.a", func(*nats.Msg) { close(got) })
	if err != nil {
		t.Fatal(err)
	}
	_ = dead.AutoUnsubscribe(1) // takes the first request, then is gone
	h.nc.Flush()
	type result struct {
		Capabilities map[string]map[string]any
	}
	done := make(chan result, 1)
	go func() {
		var res result
		h.result(internal(), request(1, "initialize", `{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}`), &res)
		done <- res
	}()
	<-got
	live := &fakeWorker{name: "a", caps: `{"tools":{},"logging":{}}`}
	live.start(t, h.nc)
	h.nc.Flush()
	select {
	case res := <-done:
		if _, ok := res.Capabilities["logging"]; !ok {
			t.Fatalf("capabilities %v: the live replica's are missing", res.Capabilities)
		}
	case <-time.After(time.Minute): // the harness's own request timeout ends it first
		t.Fatal("initialize never answered")
	}
}
