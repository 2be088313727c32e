package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// MCP 2026-07-28 clients (the go-sdk v1.8.0 client speaks it by default)
// through the gateway to upstreams that hold 2025-11-25 sessions: no
// session downstream, any ingress replica answers, and the gateway's
// answers in that revision's terms (plan: docs/plans/mcp-2026-07-28.md,
// step 3).

// statelessGateway is relayGateway with the stateless protocol on.
func statelessGateway(t *testing.T) (*testGateway, *relayUpstream, *relayUpstream) {
	t.Helper()
	alpha, beta := newRelayUpstream(t, "alpha"), newRelayUpstream(t, "beta")
	yaml := fmt.Sprintf(`
general_settings: {master_key: %s, mcp_stateless_protocol: true}
mcp_servers:
  alpha: {url: %q}
  beta: {url: %q}
`, master, alpha.url, beta.url)
	return startGateway(t, yaml, nil), alpha, beta
}

// statelessReplica runs another ingress, with the stateless protocol on,
// on g's NATS server, as a second ingress process would (secondIngress).
func statelessReplica(t *testing.T, g *testGateway) string {
	t.Helper()
	nc := roleConn(t, g.Gateway, bus.RoleIngress)
	ing := ingress.New(ingress.Options{NC: nc, Log: slog.New(slog.NewTextHandler(g.logs, nil)),
		InternalRanges: config.DefaultInternalIPRanges(), Stateless: true})
	nc.Flush()
	srv := httptest.NewServer(ing.Handler())
	t.Cleanup(func() { srv.Close(); ing.Close(); nc.Close() })
	return srv.URL
}

// modernClient connects a go-sdk client speaking 2026-07-28 (its default)
// through the gateway; the connection is a server/discover, no initialize.
func modernClient(t *testing.T, endpoint string, opts *mcp.ClientOptions) *mcp.ClientSession {
	t.Helper()
	cs := relayClient(t, endpoint, opts)
	if v := cs.InitializeResult().ProtocolVersion; v != bus.FirstModernVersion {
		t.Fatalf("the go-sdk client connected with %s, want %s (server/discover)", v, bus.FirstModernVersion)
	}
	if cs.ID() != "" {
		t.Fatalf("a 2026-07-28 client got session %q", cs.ID())
	}
	return cs
}

// A 2026-07-28 client lists and calls tools on one server and on the
// aggregation, with no session anywhere downstream.
func TestStatelessClientCallsThroughTheGateway(t *testing.T) {
	g, _, _ := statelessGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	one := modernClient(t, g.URL()+"/mcp/beta", nil)
	if got, err := relayCall(ctx, one, &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil || got != "beta" {
		t.Fatalf("whoami on /mcp/beta: %q %v", got, err)
	}
	all := modernClient(t, g.URL()+"/mcp", nil)
	if info := all.InitializeResult(); info.ServerInfo == nil || !strings.Contains(info.ServerInfo.Title, "alpha") {
		t.Errorf("discover on /mcp: server info %+v, want the aggregation's", info.ServerInfo)
	}
	tools, err := all.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, tl := range tools.Tools {
		names[tl.Name] = true
	}
	if !names["alpha__whoami"] || !names["beta__whoami"] {
		t.Fatalf("aggregated tools/list: %v", names)
	}
	if got, err := relayCall(ctx, all, &mcp.CallToolParams{Name: "alpha__whoami", Arguments: map[string]any{}}); err != nil || got != "alpha" {
		t.Fatalf("alpha__whoami on /mcp: %q %v", got, err)
	}
	if n := sessionCount(t, g); n != 0 {
		t.Errorf("the gateway holds %d sessions for 2026-07-28 clients, want none", n)
	}
}

// sessionCount is how many sessions g's session store holds.
func sessionCount(t *testing.T, g *testGateway) int {
	t.Helper()
	js, err := jetstreamFor(testConn(t, g.Gateway))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, bus.BucketSessions)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n
}

// What one ingress replica answers, another answers too: a 2026-07-28
// client's requests carry all they need.
func TestStatelessAnyIngressReplica(t *testing.T) {
	g, _, _ := statelessGateway(t)
	other := statelessReplica(t, g)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i, base := range []string{g.URL(), other, g.URL(), other} {
		r := modernPost(t, base+"/mcp/alpha", "tools/call", "whoami", `{"name":"whoami","arguments":{}}`)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"text":"alpha"`) || !strings.Contains(string(r.body), `"resultType":"complete"`) {
			t.Fatalf("request %d through %s: HTTP %d %s", i, base, r.status, r.body)
		}
	}
	cs := modernClient(t, other+"/mcp", nil)
	if got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: "beta__whoami", Arguments: map[string]any{}}); err != nil || got != "beta" {
		t.Fatalf("through the second replica: %q %v", got, err)
	}
}

// Closing the response stream is how a 2026-07-28 client cancels: the
// upstream's tool stops long before any timeout.
func TestStatelessDisconnectCancelsUpstream(t *testing.T) {
	g, _, beta := statelessGateway(t)
	cs := modernClient(t, g.URL()+"/mcp/beta", nil)
	if err := cancelSlowCall(t, g, cs, beta); err == nil {
		t.Fatal("the cancelled call succeeded")
	}
}

// Log messages reach a 2026-07-28 client only at the level its request's
// _meta asks for, and none without one; a server-to-client request, which
// that revision does not have, is refused upstream with a reason.
func TestStatelessLogLevelAndSampling(t *testing.T) {
	g, _, _ := statelessGateway(t)
	var mu sync.Mutex
	var levels []string
	cs := modernClient(t, g.URL()+"/mcp/beta", &mcp.ClientOptions{
		LoggingMessageHandler: func(_ context.Context, r *mcp.LoggingMessageRequest) {
			mu.Lock()
			levels = append(levels, string(r.Params.Level))
			mu.Unlock()
		},
		CreateMessageHandler: func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return &mcp.CreateMessageResult{Content: &mcp.TextContent{Text: "from the client"}}, nil
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	call := func(level string) {
		t.Helper()
		params := &mcp.CallToolParams{Name: "log", Arguments: map[string]any{}}
		if level != "" {
			params.Meta = mcp.Meta{bus.MetaLogLevel: level}
		}
		if _, err := relayCall(ctx, cs, params); err != nil {
			t.Fatal(err)
		}
	}
	// The first call makes the upstream session send warning and up; the
	// second, with no level, must get none of them; the third, only error.
	call("warning")
	call("")
	call("error")
	want := "warning,error,error"
	var got string
	bustest.Eventually(t, 30*time.Second, "three log messages", func() error {
		mu.Lock()
		defer mu.Unlock()
		if got = strings.Join(levels, ","); len(levels) < 3 {
			return fmt.Errorf("log messages at levels %q, want %s", got, want)
		}
		return nil
	})
	if got != want {
		t.Errorf("log messages at levels %q, want %s", got, want)
	}
	// A session-era upstream's sampling request reaches this client as
	// input_required (park.go), answered by its handler.
	if got, err := relayCall(ctx, cs, &mcp.CallToolParams{Name: "sample", Arguments: map[string]any{}}); err != nil || got != "beta sampled: from the client" {
		t.Errorf("a tool that asks for sampling: %q %v", got, err)
	}
}

// modernPost POSTs one 2026-07-28 request with its standard headers.
func modernPost(t *testing.T, url, method, name, params string) modernResponse {
	t.Helper()
	h := http.Header{"Authorization": {"Bearer " + master}, "Mcp-Protocol-Version": {bus.FirstModernVersion}, "Mcp-Method": {method}}
	if name != "" {
		h.Set("Mcp-Name", name)
	}
	return modernRaw(t, url, h, modernBody(method, params, `"2026-07-28"`))
}

func modernBody(method, params, version string) string {
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":` + version + `,"io.modelcontextprotocol/clientCapabilities":{}}`
	if params == "{}" || params == "" {
		params = "{" + meta + "}"
	} else {
		params = strings.Replace(params, "{", "{"+meta+",", 1)
	}
	return `{"jsonrpc":"2.0","id":1,"method":"` + method + `","params":` + params + `}`
}

type modernResponse struct {
	status int
	header http.Header
	body   []byte
	err    struct {
		Code int            `json:"code"`
		Data map[string]any `json:"data"`
	}
}

func modernRaw(t *testing.T, url string, h http.Header, body string) modernResponse {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header = h.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := modernResponse{status: resp.StatusCode, header: resp.Header}
	out.body, _ = io.ReadAll(resp.Body)
	var m struct {
		Error *json.RawMessage `json:"error"`
	}
	if json.Unmarshal(out.body, &m) == nil && m.Error != nil {
		_ = json.Unmarshal(*m.Error, &out.err)
	}
	return out
}

// The rules a 2026-07-28 request meets at the gateway, each answered with
// the revision's status and code.
func TestStatelessRequestRules(t *testing.T) {
	g, _, _ := statelessGateway(t)
	url := g.URL() + "/mcp/alpha"
	auth := http.Header{"Authorization": {"Bearer " + master}}
	with := func(kv ...string) http.Header {
		h := auth.Clone()
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	v := bus.FirstModernVersion
	for _, c := range []struct {
		name   string
		h      http.Header
		body   string
		status int
		code   int
		mcpbus string
	}{
		{"no Mcp-Method", with("Mcp-Protocol-Version", v), modernBody("tools/list", "{}", `"2026-07-28"`), 400, -32020, "MCPBUS_HEADER_MISMATCH"},
		{"Mcp-Name not the body's", with("Mcp-Protocol-Version", v, "Mcp-Method", "tools/call", "Mcp-Name", "other"),
			modernBody("tools/call", `{"name":"whoami","arguments":{}}`, `"2026-07-28"`), 400, -32020, "MCPBUS_HEADER_MISMATCH"},
		{"unknown version", with("Mcp-Protocol-Version", "2099-01-01", "Mcp-Method", "tools/list"), modernBody("tools/list", "{}", `"2099-01-01"`), 400, -32022, "MCPBUS_UNSUPPORTED_PROTOCOL_VERSION"},
		{"no capabilities", with("Mcp-Protocol-Version", v, "Mcp-Method", "tools/list"),
			`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}`, 400, -32602, "MCPBUS_INVALID_PARAMS"},
		{"removed method", with("Mcp-Protocol-Version", v, "Mcp-Method", "ping"), modernBody("ping", "{}", `"2026-07-28"`), 404, -32601, "MCPBUS_METHOD_NOT_FOUND"},
		// The header disagreeing with the body is a mismatch, whatever the
		// body's version (the conformance suite's header-mismatch probe).
		{"header not the body's version", with("Mcp-Protocol-Version", v, "Mcp-Method", "server/discover"), modernBody("server/discover", "{}", `"v999.0.0"`), 400, -32020, "MCPBUS_HEADER_MISMATCH"},
		{"subscriptions/listen, a flag not a boolean", with("Mcp-Protocol-Version", v, "Mcp-Method", "subscriptions/listen"),
			modernBody("subscriptions/listen", `{"notifications":{"toolsListChanged":"yes"}}`, `"2026-07-28"`), 400, -32602, "MCPBUS_INVALID_PARAMS"},
		{"unknown tool", with("Mcp-Protocol-Version", v, "Mcp-Method", "tools/call", "Mcp-Name", "nope"),
			modernBody("tools/call", `{"name":"nope","arguments":{}}`, `"2026-07-28"`), 400, -32602, ""},
	} {
		r := modernRaw(t, url, c.h, c.body)
		if r.status != c.status || r.err.Code != c.code || c.mcpbus != "" && r.err.Data["mcpbus_code"] != c.mcpbus {
			t.Errorf("%s: HTTP %d code %d, want %d %d %s: %s", c.name, r.status, r.err.Code, c.status, c.code, c.mcpbus, r.body)
		}
		if r.header.Get("Mcp-Session-Id") != "" {
			t.Errorf("%s: a session id in the answer", c.name)
		}
	}
	// Supported versions are listed, so a client can pick one.
	r := modernRaw(t, url, with("Mcp-Protocol-Version", "2099-01-01", "Mcp-Method", "tools/list"), modernBody("tools/list", "{}", `"2099-01-01"`))
	if sv, _ := r.err.Data["supported"].([]any); len(sv) == 0 || sv[0] != v {
		t.Errorf("unsupported version data: %s", r.body)
	}
	// mcpbus's own errors leave the range the revision reserves.
	r = modernPost(t, g.URL()+"/mcp/nosuch", "tools/list", "", "{}")
	if r.err.Code != bus.ErrUnknownServer.RPC+1000 || r.err.Data["mcpbus_code"] != "MCPBUS_UNKNOWN_SERVER" {
		t.Errorf("unknown server: HTTP %d %s", r.status, r.body)
	}
	// No GET stream, no session to end.
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(m, url, nil)
		req.Header = with("Mcp-Protocol-Version", v)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("%s: HTTP %d Allow %q, want 405 Allow POST", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
	// server/discover: every revision, the upstream's capabilities, cache hints.
	r = modernPost(t, url, "server/discover", "", "{}")
	var d struct {
		Result struct {
			ResultType        string          `json:"resultType"`
			SupportedVersions []string        `json:"supportedVersions"`
			Capabilities      map[string]any  `json:"capabilities"`
			TTLMs             *int            `json:"ttlMs"`
			CacheScope        string          `json:"cacheScope"`
			Meta              map[string]any  `json:"_meta"`
			Rest              json.RawMessage `json:"-"`
		} `json:"result"`
	}
	if err := json.Unmarshal(r.body, &d); err != nil || r.status != 200 {
		t.Fatalf("discover: HTTP %d %s", r.status, r.body)
	}
	res := d.Result
	if res.ResultType != "complete" || len(res.SupportedVersions) != len(bus.AllProtocolVersions()) || res.TTLMs == nil ||
		res.CacheScope != "private" || res.Capabilities["tools"] == nil || res.Meta[bus.MetaServerInfo] == nil {
		t.Errorf("discover result: %s", r.body)
	}
}

// With the stateless protocol turned off (it is on by default), a
// 2026-07-28 client is told its version is unsupported and opens a
// 2025-11-25 session.
func TestStatelessProtocolOffFallsBack(t *testing.T) {
	beta := newRelayUpstream(t, "beta")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_stateless_protocol: false}
mcp_servers:
  beta: {url: %q}
`, master, beta.url), nil)
	cs := relayClient(t, g.URL()+"/mcp/beta", nil)
	if v := cs.InitializeResult().ProtocolVersion; v != bus.LatestProtocolVersion || cs.ID() == "" {
		t.Fatalf("with the stateless protocol off: version %s, session %q; want %s with a session", v, cs.ID(), bus.LatestProtocolVersion)
	}
}
