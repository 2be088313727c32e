package gateway

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// longTool is a tool name that makes beta's exposed name longer than 64.
const longTool = "summarize_the_quarterly_financial_report_for_the_board_of_directors_v2"

// aggUpstreams starts the three upstreams of the aggregation tests: alpha and
// beta (go-sdk; both have "echo"; alpha has "get-time" and pages of 2, beta
// pages of 1) and gamma (mcp-go, pages of 2).
func aggUpstreams(t *testing.T) (alpha, beta, gamma string) {
	alpha = serveGoSDK(t, withResources(goSDKUpstream("alpha", 2, "echo", "get-time", "t1", "t2", "t3"), "alpha", "alpha://readme", "alpha://items/{id}"))
	beta = serveGoSDK(t, goSDKUpstream("beta", 1, "echo", longTool))
	gamma = gammaUpstream(t)
	return
}

// One /mcp over three upstreams (two go-sdk, one mcp-go), as a go-sdk client
// sees it: every tool once across pages under {server}__{tool}, each call
// routed to its own server with its bare name, resources by URI and by
// template, prompts and completions by ref, merged capabilities.
func TestAggregatedThreeUpstreams(t *testing.T) {
	alpha, beta, gamma := aggUpstreams(t)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  alpha: {url: %q}
  beta: {url: %q}
  gamma: {url: %q}
`, master, alpha, beta, gamma), nil)
	cs, err := connect(t, g.URL()+"/mcp", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	caps := cs.InitializeResult().Capabilities
	if caps.Tools == nil || caps.Prompts == nil || caps.Resources == nil || caps.Completions == nil {
		t.Errorf("merged capabilities %+v: want tools, prompts, resources and completions", caps)
	}

	names, pages, _ := walkTools(t, cs)
	long := ""
	for _, n := range names {
		if strings.HasPrefix(n, "beta__summarize") {
			long = n
		}
	}
	want := []string{"alpha__echo", "alpha__get-time", "alpha__t1", "alpha__t2", "alpha__t3", "beta__echo", long,
		"gamma__lookup", "gamma__search-docs", "gamma__time"}
	got := slices.Clone(names)
	sort.Strings(got)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Fatalf("tools over %d pages: %v\nwant each of %v exactly once", pages, names, want)
	}
	if pages != 3 {
		t.Errorf("alpha has 5 tools in pages of 2: the aggregation should take 3 pages, took %d", pages)
	}

	t.Run("same tool on two servers", func(t *testing.T) {
		if got := callText(t, cs, "alpha__echo", "hi"); got != "alpha/echo: hi" {
			t.Errorf("alpha__echo answered %q", got)
		}
		if got := callText(t, cs, "beta__echo", "hi"); got != "beta/echo: hi" {
			t.Errorf("beta__echo answered %q", got)
		}
		if got := callText(t, cs, "gamma__search-docs", "q"); got != "gamma/search-docs: q" {
			t.Errorf("gamma__search-docs (mcp-go) answered %q", got)
		}
		_, err := cs.CallTool(callCtx(t), &mcp.CallToolParams{Name: "delta__echo", Arguments: map[string]any{}})
		if rpcCode(err) != -32602 || !strings.Contains(err.Error(), "delta__echo") {
			t.Errorf("unknown tool: %v, want -32602 naming it", err)
		}
	})

	t.Run("names within 64 characters, stable", func(t *testing.T) {
		if len(long) != 64 || !strings.HasPrefix(long, ("beta__" + longTool)[:55]) {
			t.Fatalf("shortened name %q", long)
		}
		for _, c := range long {
			if !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", c) {
				t.Fatalf("%q has %q", long, c)
			}
		}
		again, _, _ := walkTools(t, cs)
		if !slices.Contains(again, long) {
			t.Errorf("a second list names the long tool differently: %v", again)
		}
		if got := callText(t, cs, long, "x"); got != "beta/"+longTool+": x" {
			t.Errorf("the shortened name reached %q", got)
		}
	})

	t.Run("garbage cursor", func(t *testing.T) {
		for _, c := range []string{"garbage", "eyJrIjoidG9vbHMvbGlzdCIsInMiOnsiemV0YSI6IjEifX0"} {
			_, err := cs.ListTools(callCtx(t), &mcp.ListToolsParams{Cursor: c})
			if rpcCode(err) != -32602 || !strings.Contains(err.Error(), "invalid cursor") {
				t.Errorf("cursor %q: %v, want -32602 invalid cursor", c, err)
			}
		}
	})

	t.Run("resources by URI and by template", func(t *testing.T) {
		res, err := cs.ListResources(callCtx(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		var uris []string
		for _, r := range res.Resources {
			uris = append(uris, r.URI)
		}
		if !slices.Contains(uris, "alpha://readme") || !slices.Contains(uris, "gamma://index") {
			t.Errorf("resources %v", uris)
		}
		tpl, err := cs.ListResourceTemplates(callCtx(t), nil)
		if err != nil || len(tpl.ResourceTemplates) != 2 {
			t.Fatalf("templates: %+v %v", tpl, err)
		}
		for uri, from := range map[string]string{"alpha://readme": "alpha", "alpha://items/42": "alpha",
			"gamma://index": "gamma", "gamma://docs/intro": "gamma"} {
			r, err := cs.ReadResource(callCtx(t), &mcp.ReadResourceParams{URI: uri})
			if err != nil || len(r.Contents) != 1 || r.Contents[0].Text != from+" read "+uri {
				t.Errorf("read %s: %+v %v, want %s's answer", uri, r, err, from)
			}
		}
		_, err = cs.ReadResource(callCtx(t), &mcp.ReadResourceParams{URI: "nope://x"})
		if rpcCode(err) != -32602 || !strings.Contains(err.Error(), "nope://x") {
			t.Errorf("unknown URI: %v", err)
		}
	})

	t.Run("prompts and completions by ref", func(t *testing.T) {
		list, err := cs.ListPrompts(callCtx(t), nil)
		if err != nil {
			t.Fatal(err)
		}
		var prompts []string
		for _, p := range list.Prompts {
			prompts = append(prompts, p.Name)
		}
		sort.Strings(prompts)
		if fmt.Sprint(prompts) != "[alpha__greet beta__greet gamma__summarize]" {
			t.Errorf("prompts %v", prompts)
		}
		for name, want := range map[string]string{"beta__greet": "beta/greet: Bo", "gamma__summarize": "gamma/summarize: Bo"} {
			p, err := cs.GetPrompt(callCtx(t), &mcp.GetPromptParams{Name: name, Arguments: map[string]string{"name": "Bo", "topic": "Bo"}})
			if err != nil || len(p.Messages) != 1 || p.Messages[0].Content.(*mcp.TextContent).Text != want {
				t.Errorf("prompts/get %s: %+v %v, want %q", name, p, err, want)
			}
		}
		for _, tc := range []struct {
			ref  mcp.CompleteReference
			want string
		}{
			{mcp.CompleteReference{Type: "ref/prompt", Name: "gamma__summarize"}, "gamma:summarize:a=b"},
			{mcp.CompleteReference{Type: "ref/prompt", Name: "alpha__greet"}, "alpha:greet:a=b"},
			{mcp.CompleteReference{Type: "ref/resource", URI: "alpha://items/{id}"}, "alpha:alpha://items/{id}:a=b"},
			{mcp.CompleteReference{Type: "ref/resource", URI: "gamma://docs/{name}"}, "gamma:gamma://docs/{name}:a=b"},
		} {
			res, err := cs.Complete(callCtx(t), &mcp.CompleteParams{Ref: &tc.ref, Argument: mcp.CompleteParamsArgument{Name: "a", Value: "b"}})
			if err != nil || len(res.Completion.Values) != 1 || res.Completion.Values[0] != tc.want {
				t.Errorf("complete %+v: %+v %v, want %q", tc.ref, res, err, tc.want)
			}
		}
	})

	t.Run("x-mcp-servers selects two", func(t *testing.T) {
		h := bearer(master)
		h.Set("X-Mcp-Servers", "gamma,alpha")
		two, err := connect(t, g.URL()+"/mcp", h)
		if err != nil {
			t.Fatal(err)
		}
		names, _, _ := walkTools(t, two)
		for _, n := range names {
			if !strings.HasPrefix(n, "alpha__") && !strings.HasPrefix(n, "gamma__") {
				t.Errorf("x-mcp-servers gamma,alpha listed %q", n)
			}
		}
		if len(names) != 8 {
			t.Errorf("x-mcp-servers gamma,alpha: %v, want alpha's 5 and gamma's 3", names)
		}
		if got := callText(t, two, "gamma__lookup", "k"); got != "gamma/lookup: k" {
			t.Errorf("gamma__lookup answered %q", got)
		}
		if _, err := two.CallTool(callCtx(t), &mcp.CallToolParams{Name: "beta__echo", Arguments: map[string]any{}}); rpcCode(err) != -32602 {
			t.Errorf("a tool of an unselected server: %v, want -32602", err)
		}
	})

	t.Run("/mcp/{server} keeps bare names", func(t *testing.T) {
		one, err := connect(t, g.URL()+"/mcp/alpha", bearer(master))
		if err != nil {
			t.Fatal(err)
		}
		names, _, _ := walkTools(t, one)
		if fmt.Sprint(names) != "[echo get-time t1 t2 t3]" {
			t.Errorf("/mcp/alpha tools %v, want bare names", names)
		}
		if got := callText(t, one, "get-time", ""); got != "alpha/get-time: " {
			t.Errorf("get-time answered %q", got)
		}
	})
}

// A server that hangs on tools/list does not hold the list up: the others
// come back within that server's timeout (the hung leg's error names its 1s,
// not the 5 s ListTimeout or the others' 60 s), and the hung one is named in
// the result's _meta. Its other methods still work.
func TestAggregatedListSurvivesAHungServer(t *testing.T) {
	alpha, _, gamma := aggUpstreams(t)
	stuck := serveHangingOnToolsList(t, goSDKUpstream("stuck", 0, "echo"))
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  alpha: {url: %q}
  gamma: {url: %q}
  stuck: {url: %q, timeout: 1s}
`, master, alpha, gamma, stuck), nil)
	cs, err := connect(t, g.URL()+"/mcp", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.ListTools(callCtx(t), nil)
	if err != nil {
		t.Fatalf("tools/list with a hung server: %v", err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	if !slices.Contains(names, "alpha__echo") || !slices.Contains(names, "gamma__lookup") || slices.Contains(names, "stuck__echo") {
		t.Errorf("tools %v: want alpha's and gamma's first pages, nothing of stuck", names)
	}
	missing := fmt.Sprint(res.Meta["mcpbus/unavailable"])
	if !strings.Contains(missing, "stuck") || !strings.Contains(missing, "MCPBUS_UPSTREAM_TIMEOUT") || !strings.Contains(missing, "within 1s") {
		t.Errorf("_meta %v: want stuck named with its timeout", res.Meta)
	}
	if !strings.Contains(g.logs.String(), "server=stuck") {
		t.Error("the hung server is not in the log")
	}
	// The hung list does not break the rest.
	if got := callText(t, cs, "alpha__echo", "still"); got != "alpha/echo: still" {
		t.Errorf("alpha__echo answered %q", got)
	}
}

// With LiteLLM's separator '-', tool names that contain '-' still route by
// the exact map: "get-time" of alpha and "time" of a server named
// "alpha-get" both want "alpha-get-time"; alpha (first by name) keeps it, the
// other gets a hash suffix, and each reaches its own upstream.
func TestAggregatedDashSeparator(t *testing.T) {
	alpha, beta, gamma := aggUpstreams(t)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_tool_prefix_separator: "-"}
mcp_servers:
  alpha: {url: %q}
  alpha-get: {url: %q}
  beta: {url: %q}
`, master, alpha, gamma, beta), nil)
	cs, err := connect(t, g.URL()+"/mcp", http.Header{"Authorization": {"Bearer " + master}})
	if err != nil {
		t.Fatal(err)
	}
	names, _, _ := walkTools(t, cs)
	hashed := ""
	for _, n := range names {
		if strings.HasPrefix(n, "alpha-get-time_") {
			hashed = n
		}
	}
	if !slices.Contains(names, "alpha-get-time") || hashed == "" || !slices.Contains(names, "alpha-get-search-docs") || !slices.Contains(names, "beta-echo") {
		t.Fatalf("tools %v", names)
	}
	for name, want := range map[string]string{
		"alpha-get-time":        "alpha/get-time: x",
		hashed:                  "gamma/time: x",
		"alpha-get-search-docs": "gamma/search-docs: x",
		"beta-echo":             "beta/echo: x",
	} {
		if got := callText(t, cs, name, "x"); got != want {
			t.Errorf("%s answered %q, want %q", name, got, want)
		}
	}
	if !strings.Contains(g.logs.String(), "have the same name") {
		t.Error("the collision is not logged")
	}
}

// A server whose own timeout is longer than an aggregated list's per-server
// bound (5 s) is reported as not answering within that bound, the one that
// applied, not within its 60 s.
func TestAggregatedListNamesTheBoundThatApplied(t *testing.T) {
	alpha, _, _ := aggUpstreams(t)
	stuck := serveHangingOnToolsList(t, goSDKUpstream("stuck", 0, "echo"))
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  alpha: {url: %q}\n  stuck: {url: %q}\n", master, alpha, stuck), nil)
	cs, err := connect(t, g.URL()+"/mcp", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.ListTools(callCtx(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if missing := fmt.Sprint(res.Meta["mcpbus/unavailable"]); !strings.Contains(missing, "stuck") || !strings.Contains(missing, "within 5s") || strings.Contains(missing, "1m0s") {
		t.Errorf("_meta %v: want stuck named with the list's 5s bound", res.Meta)
	}
}
