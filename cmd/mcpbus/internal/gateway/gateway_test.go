package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/config"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

const master = "sk-gw-MASTER-7f3a"

// A real go-sdk client lists and calls tools on a real go-sdk upstream through
// the gateway, on every way of selecting the server.
func TestToolsThroughTheGateway(t *testing.T) {
	url, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  demo: {url: %q}
`, master, url), nil)

	for _, tc := range []struct {
		name     string
		endpoint string
		header   http.Header
		prefix   string // of the tool names: none where one server is selected
	}{
		{"path", g.URL() + "/mcp/demo", bearer(master), ""},
		{"x-litellm-mcp-server header", g.URL() + "/mcp", http.Header{"Authorization": {"Bearer " + master}, "X-Litellm-Mcp-Server": {"demo"}}, ""},
		{"query", g.URL() + "/mcp?server=demo", bearer(master), ""},
		// No selection aggregates, even one server: its names are prefixed,
		// as they will be when the caller sees a second server.
		{"only configured server", g.URL() + "/mcp", bearer(master), "demo__"},
		{"x-litellm-api-key", g.URL() + "/mcp/demo", http.Header{"X-Litellm-Api-Key": {"Bearer " + master}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs, err := connect(t, tc.endpoint, tc.header)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			ctx := context.Background()
			tools, err := cs.ListTools(ctx, nil)
			if err != nil {
				t.Fatalf("tools/list: %v", err)
			}
			var names []string
			for _, tl := range tools.Tools {
				names = append(names, tl.Name)
			}
			if got := strings.Join(names, ","); !slices.Contains(names, tc.prefix+"add") || !slices.Contains(names, tc.prefix+"echo") || !slices.Contains(names, tc.prefix+"slow") {
				t.Fatalf("tools = %s, want %sadd, %[2]secho and %[2]sslow", got, tc.prefix)
			}
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.prefix + "add", Arguments: map[string]any{"a": 2, "b": 40}})
			if err != nil {
				t.Fatalf("tools/call add: %v", err)
			}
			sc, _ := json.Marshal(res.StructuredContent)
			if string(sc) != `{"sum":42}` {
				t.Fatalf("structuredContent = %s, want {\"sum\":42}", sc)
			}
			res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: tc.prefix + "echo", Arguments: map[string]any{"text": "héllo"}})
			if err != nil || res.IsError || res.Content[0].(*mcp.TextContent).Text != "héllo" {
				t.Fatalf("tools/call echo: %v %+v", err, res)
			}
			if _, err := cs.ListResources(ctx, nil); err != nil {
				t.Fatalf("resources/list on a single-server route: %v", err)
			}
		})
	}
}

// Each auth_type puts exactly its header upstream, and nothing the caller sent
// to authenticate with the gateway ever reaches an upstream.
func TestUpstreamSeesOnlyTheConfiguredCredential(t *testing.T) {
	type want struct{ authorization, apiKey string }
	cases := map[string]struct {
		authType, value string
		want            want
	}{
		"none":   {"none", "", want{}},
		"apikey": {"api_key", "ak-SECRET-1", want{apiKey: "ak-SECRET-1"}},
		"bearer": {"bearer_token", "bt-SECRET-2", want{authorization: "Bearer bt-SECRET-2"}},
		"basic":  {"basic", "alice:pw-SECRET-3", want{authorization: "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw-SECRET-3"))}},
		"authz":  {"authorization", "Custom az-SECRET-4", want{authorization: "Custom az-SECRET-4"}},
		"token":  {"token", "tk-SECRET-5", want{authorization: "Token tk-SECRET-5"}},
	}
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "general_settings: {master_key: os.environ/MASTER}\nmcp_servers:\n")
	env := map[string]string{"MASTER": master}
	recs := map[string]*recorder{}
	for name, c := range cases {
		url, rec := upstream(t, name)
		recs[name] = rec
		fmt.Fprintf(&cfg, "  %s:\n    url: %q\n    auth_type: %s\n", name, url, c.authType)
		if c.value != "" {
			env["CRED_"+name] = c.value
			fmt.Fprintf(&cfg, "    auth_value: os.environ/CRED_%s\n", name)
		}
		if name == "apikey" {
			cfg.WriteString("    static_headers: {X-Tenant: acme}\n")
		}
	}
	g := startGateway(t, cfg.String(), env)

	// The caller presents its key both ways clients do, plus a cookie.
	callerHeader := http.Header{
		"Authorization":     {"Bearer " + master},
		"X-Litellm-Api-Key": {"Bearer " + master},
		"Cookie":            {"session=" + master},
	}
	for name := range cases {
		cs, err := connect(t, g.URL()+"/mcp/"+name, callerHeader)
		if err != nil {
			t.Fatalf("%s: connect: %v", name, err)
		}
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
			t.Fatalf("%s: call: %v", name, err)
		}
	}
	for name, c := range cases {
		seen := recs[name].seen()
		if len(seen) < 3 {
			t.Fatalf("%s: upstream saw %d requests, want initialize, initialized and the call", name, len(seen))
		}
		for i, h := range seen {
			if got := h.Get("Authorization"); got != c.want.authorization {
				t.Errorf("%s request %d: Authorization = %q, want %q", name, i, got, c.want.authorization)
			}
			if got := h.Get("X-Api-Key"); got != c.want.apiKey {
				t.Errorf("%s request %d: X-Api-Key = %q, want %q", name, i, got, c.want.apiKey)
			}
			if name == "apikey" && h.Get("X-Tenant") != "acme" {
				t.Errorf("%s request %d: static header X-Tenant missing", name, i)
			}
			for k, vs := range h {
				for _, v := range vs {
					if strings.Contains(v, master) {
						t.Errorf("%s request %d: the gateway key reached the upstream in %s", name, i, k)
					}
				}
			}
			if h.Get("X-Litellm-Api-Key") != "" || h.Get("Cookie") != "" {
				t.Errorf("%s request %d: a caller header was forwarded: %v", name, i, h)
			}
		}
	}
	assertNoSecrets(t, g, master, "ak-SECRET-1", "bt-SECRET-2", "pw-SECRET-3", "az-SECRET-4", "tk-SECRET-5")
}

// Missing and wrong keys get 401 with a JSON-RPC error body that says why and
// never echoes what was sent.
func TestKeyRequired(t *testing.T) {
	url, rec := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	endpoint := g.URL() + "/mcp/demo"
	for _, tc := range []struct {
		name   string
		header http.Header
		says   string
	}{
		{"missing", nil, "no API key"},
		{"wrong bearer", bearer("sk-wrong-guess"), "invalid API key"},
		{"wrong x-litellm-api-key", http.Header{"X-Litellm-Api-Key": {"Bearer sk-wrong-guess"}}, "invalid API key"},
		{"not bearer", http.Header{"Authorization": {"Basic " + master}}, "no API key"},
	} {
		r := post(t, endpoint, tc.header, initBody)
		if r.status != http.StatusUnauthorized || r.rpcErr.Code != -32010 || !strings.Contains(r.rpcErr.Message, tc.says) {
			t.Errorf("%s: HTTP %d %s, want 401 with -32010 saying %q", tc.name, r.status, r.body, tc.says)
		}
		if strings.Contains(string(r.body), "sk-wrong-guess") {
			t.Errorf("%s: the 401 body echoes the presented key", tc.name)
		}
		if r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	if _, err := connect(t, endpoint, bearer("sk-wrong-guess")); err == nil {
		t.Error("the go-sdk client connected with a wrong key")
	}
	if n := len(rec.seen()); n != 0 {
		t.Errorf("unauthenticated callers caused %d upstream requests", n)
	}
}

func TestUnknownServerAndSelection(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {alpha: {url: %q}, beta: {url: %q}}\n", master, a, b), nil)
	for _, u := range []string{g.URL() + "/mcp/nope", g.URL() + "/mcp?server=nope"} {
		r := post(t, u, bearer(master), initBody)
		if r.status != http.StatusNotFound || !strings.Contains(r.rpcErr.Message, `unknown MCP server "nope"`) {
			t.Errorf("%s: HTTP %d %s, want 404 naming the server", u, r.status, r.body)
		}
	}
	// Two servers and no selection: /mcp aggregates them (aggregate_test.go).
	r := post(t, g.URL()+"/mcp", bearer(master), initBody)
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "alpha, beta") {
		t.Errorf("/mcp with two servers and no selection: HTTP %d %s, want an aggregated initialize naming both", r.status, r.body)
	}
	h := bearer(master)
	h.Set("X-Litellm-Mcp-Server", "beta")
	if r := post(t, g.URL()+"/mcp", h, initBody); r.status != http.StatusOK {
		t.Errorf("header selection: HTTP %d %s", r.status, r.body)
	}
}

// An upstream that is down or hangs gives a JSON-RPC error naming the server,
// never a hang: the hanging upstream holds the call until the test ends, so
// only its 500ms timeout (which the error names) ends it. The 30 s bound on
// the request only turns a hang into a failure.
func TestUpstreamDownOrHanging(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  down: {url: "http://%s/mcp", timeout: 2s}
  hang: {url: %q, timeout: 500ms}
`, master, freeAddr(t), hang.URL+"/mcp"), nil)

	for _, tc := range []struct {
		server string
		code   int
		says   string
	}{
		{"down", -32020, `upstream server "down" is unavailable: connection refused`},
		{"hang", -32021, `upstream server "hang" did not answer tools/list within 500ms`},
	} {
		url := g.URL() + "/mcp/" + tc.server
		h := initSession(t, url, bearer(master))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r := postCtx(t, ctx, url, h, `{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
		cancel()
		if r.status != http.StatusOK || r.rpcErr.Code != tc.code || r.rpcErr.Message != tc.says {
			t.Errorf("%s: HTTP %d %s\nwant a JSON-RPC error %d: %s", tc.server, r.status, r.body, tc.code, tc.says)
		}
	}
	// A real client sees the same, as an error from its call.
	cs, err := connect(t, g.URL()+"/mcp/hang", bearer(master))
	if err != nil {
		t.Fatalf("connect to a hanging server should still initialize: %v", err)
	}
	_, err = cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "x"})
	if err == nil || !strings.Contains(err.Error(), `"hang"`) {
		t.Errorf("go-sdk client call on a hanging upstream: %v", err)
	}
}

// The Streamable HTTP session rules of the spec, as the ingress enforces them.
func TestSessionRules(t *testing.T) {
	url, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	endpoint := g.URL() + "/mcp/demo"
	list := `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`

	if r := post(t, endpoint, bearer(master), list); r.status != http.StatusBadRequest || !strings.Contains(r.rpcErr.Message, "Mcp-Session-Id") {
		t.Errorf("no session: HTTP %d %s, want 400 naming Mcp-Session-Id", r.status, r.body)
	}
	h := bearer(master)
	h.Set("Mcp-Session-Id", "not-a-session")
	if r := post(t, endpoint, h, list); r.status != http.StatusNotFound {
		t.Errorf("unknown session: HTTP %d %s, want 404", r.status, r.body)
	}
	h = initSession(t, endpoint, bearer(master))
	if r := post(t, endpoint, h, list); r.status != http.StatusOK || len(r.result) == 0 {
		t.Errorf("tools/list in session: HTTP %d %s", r.status, r.body)
	}
	bad := h.Clone()
	bad.Set("Mcp-Protocol-Version", "1999-01-01")
	if r := post(t, endpoint, bad, list); r.status != http.StatusBadRequest || !strings.Contains(r.rpcErr.Message, "1999-01-01") {
		t.Errorf("unsupported protocol version: HTTP %d %s", r.status, r.body)
	}
	if r := post(t, endpoint, h, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); r.status != http.StatusAccepted || len(r.body) != 0 {
		t.Errorf("notification: HTTP %d %q, want 202 and no body", r.status, r.body)
	}
	if r := post(t, endpoint, h, `{"jsonrpc":"2.0","id":3,"method":"ping"}`); r.status != http.StatusOK || string(r.result) != "{}" {
		t.Errorf("ping: HTTP %d %s", r.status, r.body)
	}
	if r := post(t, endpoint, h, `{"jsonrpc":"2.0","id":4,`); r.status != http.StatusBadRequest || r.rpcErr.Code != -32700 {
		t.Errorf("malformed JSON: HTTP %d %s, want 400 with -32700", r.status, r.body)
	}
	// GET opens the session's server-to-client stream; it must ask for SSE.
	req, _ := http.NewRequest(http.MethodGet, endpoint, nil)
	req.Header = h.Clone()
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusNotAcceptable {
		t.Errorf("GET without Accept: text/event-stream: %v %v, want 406", err, resp.Status)
	}
	resp.Body.Close()
	req, _ = http.NewRequest(http.MethodGet, endpoint, nil)
	req.Header = h.Clone()
	req.Header.Set("Accept", "text/event-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Errorf("GET with the session: %v %v %q, want 200 text/event-stream", err, resp.Status, resp.Header.Get("Content-Type"))
	}
	resp.Body.Close()

	del := func() int {
		req, _ := http.NewRequest(http.MethodDelete, endpoint, nil)
		req.Header = h.Clone()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := del(); s != http.StatusOK {
		t.Errorf("DELETE: HTTP %d", s)
	}
	if r := post(t, endpoint, h, list); r.status != http.StatusNotFound {
		t.Errorf("after DELETE: HTTP %d, want 404", r.status)
	}
	if s := del(); s != http.StatusNotFound {
		t.Errorf("second DELETE: HTTP %d, want 404", s)
	}
}

// The worker opens one upstream session and reuses it; when the upstream
// forgets it (404), the worker re-initializes and the caller never notices.
func TestUpstreamSessionReusedAndRenewed(t *testing.T) {
	url, rec := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	cs, err := connectPlain(t, g.URL()+"/mcp/demo", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	call := func() {
		t.Helper()
		res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}})
		if err != nil || res.IsError {
			t.Fatalf("call: %v %+v", err, res)
		}
	}
	for i := 0; i < 20; i++ {
		call()
	}
	if n := rec.initCount(); n != 1 {
		t.Fatalf("20 calls caused %d upstream initializes, want 1", n)
	}
	rec.mu.Lock()
	rec.forget = true
	rec.mu.Unlock()
	call()
	if n := rec.initCount(); n != 2 {
		t.Fatalf("after the upstream forgot the session: %d initializes, want 2", n)
	}
	call()
	if n := rec.initCount(); n != 2 {
		t.Fatalf("the renewed session was not reused: %d initializes", n)
	}
}

// Results pass through byte for byte: fields the gateway does not know, _meta
// and structuredContent survive.
func TestResultsRelayedVerbatim(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "verbatim", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "meta", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{
			Meta:              mcp.Meta{"trace": "t-1", "nested": map[string]any{"k": []any{1.5, "z"}}},
			Content:           []mcp.Content{&mcp.TextContent{Text: "hi"}},
			StructuredContent: map[string]any{"b": 2, "a": 1},
		}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{JSONResponse: true})
	// A newer upstream adds a field this gateway has never heard of.
	var upstreamResult json.RawMessage
	inject := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !bytes.Contains(body, []byte(`"tools/call"`)) {
			h.ServeHTTP(w, r)
			return
		}
		rw := httptest.NewRecorder()
		h.ServeHTTP(rw, r)
		var m map[string]json.RawMessage
		json.Unmarshal(rw.Body.Bytes(), &m)
		res := bytes.TrimSuffix(m["result"], []byte("}"))
		upstreamResult = append(res, []byte(`,"vendorExtension":{"x":[1,2,{"y":null}]}}`)...)
		m["result"] = upstreamResult
		out, _ := json.Marshal(m)
		w.Header().Set("Content-Type", "application/json")
		w.Write(out)
	})
	up := httptest.NewServer(inject)
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {v: {url: %q}}\n", master, up.URL), nil)
	url := g.URL() + "/mcp/v"
	hdr := initSession(t, url, bearer(master))
	r := post(t, url, hdr, `{"jsonrpc":"2.0","id":"call-1","method":"tools/call","params":{"name":"meta","arguments":{}}}`)
	if r.status != http.StatusOK || upstreamResult == nil {
		t.Fatalf("HTTP %d %s", r.status, r.body)
	}
	if !bytes.Equal(r.result, upstreamResult) {
		t.Fatalf("result changed in transit:\nupstream: %s\ngateway:  %s", upstreamResult, r.result)
	}
	if !bytes.Contains(r.body, []byte(`"id":"call-1"`)) {
		t.Fatalf("the caller's id was not restored: %s", r.body)
	}
}

// Callers from outside the internal ranges see only public servers; an internal
// server answers them exactly like one that does not exist.
func TestExternalCallersSeeOnlyPublicServers(t *testing.T) {
	a, _ := upstream(t, "private")
	b, _ := upstream(t, "open")
	// The test client is on 127.0.0.1; declaring only 10/8 internal makes it external.
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_internal_ip_ranges: ["10.0.0.0/8"]}
mcp_servers:
  private: {url: %q}
  open: {url: %q, available_on_public_internet: true}
`, master, a, b), nil)
	r := post(t, g.URL()+"/mcp/private", bearer(master), initBody)
	if r.status != http.StatusNotFound || r.rpcErr.Message != `unknown MCP server "private"` {
		t.Errorf("external caller on an internal server: HTTP %d %s, want the unknown-server 404", r.status, r.body)
	}
	if r := post(t, g.URL()+"/mcp/open", bearer(master), initBody); r.status != http.StatusOK {
		t.Errorf("external caller on a public server: HTTP %d %s", r.status, r.body)
	}
	// With no selection, the only server this caller may see is chosen.
	cs, err := connect(t, g.URL()+"/mcp", bearer(master))
	if err != nil {
		t.Fatalf("connect /mcp: %v", err)
	}
	if got := cs.InitializeResult().ServerInfo.Title; got != "mcpbus: open" {
		t.Errorf("/mcp for an external caller routed to %q, want the public server", got)
	}
}

// Without a master key the gateway runs open on loopback only.
func TestOpenModeOnlyOnLoopback(t *testing.T) {
	cfg, err := config.Parse("config.yaml", []byte("mcp_servers: {}\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0"} {
		_, err := Start(context.Background(), Options{Config: cfg, Listen: addr, DataDir: t.TempDir(), NATSListen: "off"})
		if err == nil || !strings.Contains(err.Error(), "master_key") {
			t.Errorf("listen %s without a master key: %v, want a refusal naming master_key", addr, err)
		}
	}
	url, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("mcp_servers: {demo: {url: %q}}\n", url), nil)
	if _, err := connect(t, g.URL()+"/mcp/demo", nil); err != nil {
		t.Fatalf("open mode on loopback should need no key: %v", err)
	}
}

// Progress from a slow upstream tool reaches a go-sdk client through the bus.
func TestProgressRelayed(t *testing.T) {
	url, _ := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	got := make(chan *mcp.ProgressNotificationParams, 16)
	client := mcp.NewClient(&mcp.Implementation{Name: "p", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) { got <- r.Params },
	})
	cs, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: g.URL() + "/mcp/demo", HTTPClient: &http.Client{Transport: headerTransport{bearer(master)}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	params := &mcp.CallToolParams{Name: "slow", Arguments: map[string]any{"seconds": 0.3, "steps": 3}}
	params.SetProgressToken("my-token")
	if _, err := cs.CallTool(context.Background(), params); err != nil {
		t.Fatal(err)
	}
	// The go-sdk client hands notifications to its handler asynchronously, so
	// they may land just after the call returns.
	var n int
	for timeout := time.After(30 * time.Second); n < 3; {
		select {
		case p := <-got:
			n++
			if p.ProgressToken != "my-token" {
				t.Errorf("progress token %v reached the client, want the caller's own", p.ProgressToken)
			}
		case <-timeout:
			t.Fatalf("%d progress notifications within 30s, want 3", n)
		}
	}
	if n != 3 {
		t.Errorf("%d progress notifications, want 3", n)
	}
}

// assertNoSecrets scans everything the gateway logged.
func assertNoSecrets(t *testing.T, g *testGateway, secrets ...string) {
	t.Helper()
	registerSecret(secrets...) // and in every body and log of the suite
	logs := g.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("a credential appears in the logs: %q", s)
		}
	}
}

// A client that declares roots (the go-sdk's default) may be asked for them
// outside any call, so its calls run on an upstream session of its own: one
// more initialize, declaring roots, reused for every later call.
func TestCapableClientGetsItsOwnUpstreamSession(t *testing.T) {
	url, rec := upstream(t, "demo")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {demo: {url: %q}}\n", master, url), nil)
	plain, err := connectPlain(t, g.URL()+"/mcp/demo", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	capable, err := connect(t, g.URL()+"/mcp/demo", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		for _, cs := range []*mcp.ClientSession{plain, capable} {
			if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil || res.IsError {
				t.Fatalf("call: %v %+v", err, res)
			}
		}
	}
	if n := rec.initCount(); n != 2 {
		t.Fatalf("20 calls from a plain and a roots-declaring client caused %d upstream initializes, want 2 (shared + that client's own)", n)
	}
}
