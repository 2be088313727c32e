package gateway

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// Benchmarks of tool search mode (docs/AGGREGATION.md#tool-search), in one
// process like hotpath_bench_test.go: a plain tools/call on /mcp (through the
// router: aggregation) with the mode off, the same call through call_tool
// with it on, and search_tools over 500 tools. The index itself:
// router/search BenchmarkSearch500.

// searchBenchSetup runs a gateway over the demo upstream and, when many > 0,
// a catalog upstream "big" with that many tools.
func searchBenchSetup(b *testing.B, many int) *Gateway {
	b.Helper()
	up := httpTestServer(b, benchDemo)
	yaml := fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  demo: {url: %q}\n", master, up+"/mcp")
	if many > 0 {
		tools := make([]catalogTool, 0, many)
		tools = append(tools, githubTools()...)
		tools = append(tools, jiraTools()...)
		tools = append(tools, slackTools()...)
		for i := len(tools); i < many; i++ {
			tools = append(tools, catalogTool{fmt.Sprintf("filler_%d", i), fmt.Sprintf("Filler tool %d for a big catalog of records.", i), "id,page"})
		}
		yaml += fmt.Sprintf("  big: {url: %q}\n", catalogUpstream(b, "big", tools[:many]))
	}
	return benchGateway(b, yaml, nil, false)
}

func httpTestServer(b *testing.B, h http.Handler) string {
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv.URL
}

// benchSearchLoop opens a session (with the tool search header when on) and
// sends body (with a fresh id) until the benchmark ends, checking each
// answer holds want(id).
func benchSearchLoop(b *testing.B, url string, on bool, body func(id string) string, want func(id string) string) {
	c := benchClient()
	var extra http.Header
	if on {
		extra = http.Header{"X-Mcpbus-Tool-Search": {"on"}}
	}
	post := func(sid, msg string, buf *bytes.Buffer) (int, string, error) {
		return benchPostWith(c, url, "Bearer "+master, sid, extra, []byte(msg), buf)
	}
	var buf bytes.Buffer
	st, sid, err := post("", initBody, &buf)
	if err != nil || st != http.StatusOK || sid == "" {
		b.Fatalf("initialize: HTTP %d %v %s", st, err, buf.Bytes())
	}
	if st, _, err := post(sid, `{"jsonrpc":"2.0","method":"notifications/initialized"}`, &buf); err != nil || st/100 != 2 {
		b.Fatalf("initialized: HTTP %d %v", st, err)
	}
	one := func() {
		id := strconv.FormatInt(benchID.Add(1), 10)
		st, _, err := post(sid, body(id), &buf)
		if err != nil || st != http.StatusOK || !bytes.Contains(buf.Bytes(), []byte(want(id))) {
			b.Fatalf("HTTP %d %v: %s", st, err, buf.Bytes())
		}
	}
	one() // warm: upstream session, name map, index
	b.ReportAllocs()
	for b.Loop() {
		one()
	}
}

func searchEchoCall(name string) func(string) string {
	return func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"` + name + `","arguments":{"text":"m` + id + `"}}}`
	}
}

func searchEchoed(id string) string { return `"text":"m` + id + `"` }

// A plain tools/call of demo__echo on /mcp (the router routes it by the
// name map), tool search off.
func BenchmarkToolSearchOffToolsCall(b *testing.B) {
	g := searchBenchSetup(b, 0)
	benchSearchLoop(b, g.URL()+"/mcp", false, searchEchoCall("demo__echo"), searchEchoed)
}

// The same call through call_tool, tool search on.
func BenchmarkToolSearchOnCallTool(b *testing.B) {
	g := searchBenchSetup(b, 0)
	benchSearchLoop(b, g.URL()+"/mcp", true, func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"call_tool","arguments":{"name":"demo__echo","arguments":{"text":"m` + id + `"}}}}`
	}, searchEchoed)
}

// search_tools over 501 tools (500 of "big" and demo's), through the
// gateway: the index is kept, so this is the ingress, the router and the
// ranking, no upstream.
func BenchmarkToolSearchSearch500(b *testing.B) {
	g := searchBenchSetup(b, 500)
	benchSearchLoop(b, g.URL()+"/mcp", true, func(id string) string {
		return `{"jsonrpc":"2.0","id":` + id + `,"method":"tools/call","params":{"name":"search_tools","arguments":{"query":"create a github issue"}}}`
	}, func(string) string { return `"name":"big__create_issue"` })
}
