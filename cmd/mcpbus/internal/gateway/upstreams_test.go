package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/bustest"
	"github.com/mcpbus/mcpbus/toolworkers"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// x-mcp-{server}-{header} reaches only that server (names with '-' matched
// longest first), wins over the configured credential, and opens an upstream
// session of its own instead of riding on the shared one.
func TestPerRequestCredentials(t *testing.T) {
	urlA, recA := upstream(t, "a")
	urlAB, recAB := upstream(t, "a-b")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a: {url: %q, auth_type: bearer_token, auth_value: configured-a, extra_headers: [X-Request-Tenant]}
  a-b: {url: %q, static_headers: {X-Static: always}}
`, master, urlA, urlAB), nil)
	call := func(server string, h http.Header) {
		t.Helper()
		cs, err := connectPlain(t, g.URL()+"/mcp/"+server, h)
		if err != nil {
			t.Fatalf("%s: %v", server, err)
		}
		if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
			t.Fatalf("%s: %v", server, err)
		}
	}
	h := bearer(master)
	h.Set("X-Mcp-A-B-Authorization", "Bearer user-token-for-ab")
	h.Set("X-Mcp-A-B-X-Static", "caller-tries-to-override")
	h.Set("X-Mcp-A-X-Trace", "for-a")
	h.Set("X-Request-Tenant", "tenant-7")
	call("a", h)
	call("a-b", h)

	last := func(rec *recorder) http.Header { s := rec.seen(); return s[len(s)-1] }
	ha, hab := last(recA), last(recAB)
	if got := ha.Get("Authorization"); got != "Bearer configured-a" {
		t.Errorf("server a: Authorization %q; the credential for a-b must not reach a", got)
	}
	if ha.Get("X-Trace") != "for-a" || hab.Get("X-Trace") != "" {
		t.Errorf("x-mcp-a-x-trace: a got %q, a-b got %q", ha.Get("X-Trace"), hab.Get("X-Trace"))
	}
	if ha.Get("X-Request-Tenant") != "tenant-7" || hab.Get("X-Request-Tenant") != "" {
		t.Errorf("extra_headers: a got %q, a-b (not listed) got %q", ha.Get("X-Request-Tenant"), hab.Get("X-Request-Tenant"))
	}
	if got := hab.Get("Authorization"); got != "Bearer user-token-for-ab" {
		t.Errorf("server a-b: Authorization %q, want the caller's per-request credential", got)
	}
	if got := hab.Get("X-Static"); got != "always" {
		t.Errorf("static_headers must win over a per-request header: %q", got)
	}
	// The caller with its own credential got its own upstream session; a caller
	// without one uses the shared session.
	call("a-b", bearer(master))
	call("a-b", bearer(master))
	if n := recAB.initCount(); n != 2 {
		t.Errorf("a-b saw %d initializes, want 2 (shared + the caller's own)", n)
	}
	for _, hdr := range recAB.seen() {
		if strings.Contains(hdr.Get("Authorization"), "user-token") && hdr.Get("Mcp-Session-Id") != "" && hdr.Get("X-Trace") != "" {
			t.Error("mixed headers on one upstream request")
		}
	}
	assertNoSecrets(t, g, "user-token-for-ab", "configured-a", master)
}

// OAuth2 client credentials: 50 concurrent calls across two worker replicas
// fetch one token; an upstream 401 refreshes it once.
func TestOAuth2AcrossReplicas(t *testing.T) {
	var fetches atomic.Int64
	var current atomic.Value
	current.Store("")
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		id, secret, _ := r.BasicAuth()
		if id == "" {
			id, secret = r.Form.Get("client_id"), r.Form.Get("client_secret")
		}
		if id != "mcpbus" || secret != "oauth-SECRET" || r.Form.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		n := fetches.Add(1)
		tok := fmt.Sprintf("tok-%d", n)
		current.Store(tok)
		time.Sleep(50 * time.Millisecond) // real time: a slow token endpoint widens the race
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
	}))
	t.Cleanup(tokens.Close)
	var unauthorized atomic.Int64
	mcpSrv := demo.Handler("oauth")
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+current.Load().(string) {
			unauthorized.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mcpSrv.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	env := map[string]string{"OAUTH_SECRET": "oauth-SECRET"}
	cfgYAML := fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  api: {url: %q, auth_type: oauth2, token_url: %q, client_id: mcpbus, client_secret: os.environ/OAUTH_SECRET, scopes: [mcp]}
`, master, up.URL, tokens.URL)
	g := startGateway(t, cfgYAML, env)

	// A second replica of the same worker joins over the bus.
	nc := roleConn(t, g.Gateway, bus.RoleWorkers)
	cfg, _ := config.Parse("config.yaml", []byte(cfgYAML), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	js, _ := jetstreamFor(nc)
	// The replica shares the gateway's key (MCPBUS_SALT_KEY in production):
	// tokens cross KV sealed.
	replica, err := toolworkers.Start(nc, cfg.Servers[0], toolworkers.Options{Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, JetStream: js,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Secrets: g.secrets})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	nc.Flush()

	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := initSessionQuiet(g.URL()+"/mcp/api", bearer(master))
			if h == nil {
				errs <- fmt.Errorf("initialize failed")
				return
			}
			r := postQuiet(g.URL()+"/mcp/api", h, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`, i))
			if !strings.Contains(r, `"text":"x"`) {
				errs <- fmt.Errorf("call %d: %s", i, r)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("50 concurrent calls across 2 replicas fetched %d tokens, want 1", n)
	}
	// The provider rotates the token: the next call gets a 401, refreshes once
	// and succeeds.
	current.Store("rotated-elsewhere")
	before := unauthorized.Load()
	h := initSession(t, g.URL()+"/mcp/api", bearer(master))
	r := post(t, g.URL()+"/mcp/api", h, `{"jsonrpc":"2.0","id":99,"method":"tools/call","params":{"name":"echo","arguments":{"text":"y"}}}`)
	if !strings.Contains(string(r.body), `"text":"y"`) {
		t.Fatalf("after rotation: %s", r.body)
	}
	if got := unauthorized.Load() - before; got < 1 || fetches.Load() != 2 {
		t.Fatalf("after rotation: %d upstream 401s, %d fetches; want a refresh after the 401", got, fetches.Load())
	}
	assertNoSecrets(t, g, "oauth-SECRET", "tok-1", "tok-2")
}

// aws_sigv4: every upstream request arrives signed, with the body hash.
func TestSigV4ReachesUpstreamSigned(t *testing.T) {
	mcpSrv := demo.Handler("aws")
	var signed, total atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		total.Add(1)
		sum := sha256.Sum256(body)
		auth := r.Header.Get("Authorization")
		if strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/") && strings.Contains(auth, "/eu-west-1/execute-api/aws4_request") &&
			r.Header.Get("X-Amz-Content-Sha256") == hex.EncodeToString(sum[:]) && r.Header.Get("X-Amz-Security-Token") == "session-tok" {
			signed.Add(1)
		}
		mcpSrv.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  aws: {url: %q, auth_type: aws_sigv4, aws_access_key_id: AKIDEXAMPLE, aws_secret_access_key: os.environ/AWS_SECRET,
        aws_session_token: session-tok, aws_region_name: eu-west-1, aws_service_name: execute-api}
`, master, up.URL), map[string]string{"AWS_SECRET": "aws-SECRET-key"})
	cs, err := connect(t, g.URL()+"/mcp/aws", bearer(master))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "x"}}); err != nil {
		t.Fatal(err)
	}
	if signed.Load() != total.Load() || total.Load() < 3 {
		t.Fatalf("%d of %d upstream requests were signed", signed.Load(), total.Load())
	}
	assertNoSecrets(t, g, "aws-SECRET-key")
}

// max_concurrent_requests with a bounded queue, observed under load: the
// excess fails fast with a reason instead of piling up. The upstream holds
// every call until the other six have been refused, so exactly 2 run and 2
// wait, however the ten calls are scheduled.
func TestMaxConcurrentRequests(t *testing.T) {
	// Counted inside the tool: it returns before its response is sent, so the
	// count never overlaps the next call the way an HTTP handler's would.
	var inFlight, peak atomic.Int64
	release := make(chan struct{})
	releaseOnce := sync.OnceFunc(func() { close(release) })
	srv := mcp.NewServer(&mcp.Implementation{Name: "slowpoke", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "slow", InputSchema: json.RawMessage(`{"type":"object"}`)}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done after the release"}}}, nil
	})
	up := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(up.Close)
	t.Cleanup(releaseOnce) // before the upstream's Close, which waits for the calls
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  slowpoke: {url: %q, max_concurrent_requests: 2, max_queued_requests: 2, timeout: 10s}
`, master, up.URL), nil)
	h := initSession(t, g.URL()+"/mcp/slowpoke", bearer(master))
	var ok, busy, other atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := postQuiet(g.URL()+"/mcp/slowpoke", h, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"slow","arguments":{}}}`, i))
			switch {
			case strings.Contains(r, "done after"):
				ok.Add(1)
			case strings.Contains(r, `"slowpoke\" is at its limit of 2 concurrent calls and 2 waiting`):
				busy.Add(1)
			default:
				other.Add(1)
				t.Errorf("call %d: %s", i, r)
			}
		}(i)
	}
	_ = bustest.Poll(30*time.Second, func() error { // only calls that never arrive wait it out; checked below
		if (inFlight.Load() < 2 || busy.Load() < 6) && other.Load() == 0 {
			return errors.New("not yet")
		}
		return nil
	})
	if n := inFlight.Load(); n != 2 {
		t.Errorf("the upstream runs %d calls with 2 allowed and 8 more sent", n)
	}
	releaseOnce()
	wg.Wait()
	if peak.Load() > 2 {
		t.Errorf("the upstream saw %d concurrent calls, limit 2", peak.Load())
	}
	if ok.Load() != 4 || busy.Load() != 6 {
		t.Errorf("%d succeeded, %d refused as busy; want 4 through (2 running + 2 queued) and the other 6 refused", ok.Load(), busy.Load())
	}
}

// The circuit breaker opens after consecutive failures and says since when;
// list calls are retried once on a transport error, tools/call never. No
// clock races: "flaky" has an hour's cooldown, so it stays open while the
// test looks; "brief" (the same upstream) has 100ms, and the test calls it
// until the probe after the cooldown goes through.
func TestBreakerAndRetries(t *testing.T) {
	mcpSrv := demo.Handler("flaky")
	var dropNext atomic.Int64 // drop the connection of the next N data requests
	var lists, calls atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		switch {
		case strings.Contains(string(body), `"tools/list"`):
			lists.Add(1)
		case strings.Contains(string(body), `"tools/call"`):
			calls.Add(1)
		}
		// Data requests only: not notifications, nor the worker's GET stream.
		if r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") != "" && !strings.Contains(string(body), "notifications/") && dropNext.Load() > 0 {
			dropNext.Add(-1)
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
			return
		}
		mcpSrv.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  flaky: {url: %q, circuit_breaker_threshold: 3, circuit_breaker_cooldown: 1h}
  brief: {url: %q, circuit_breaker_threshold: 3, circuit_breaker_cooldown: 100ms}
`, master, up.URL, up.URL), nil)
	url := g.URL() + "/mcp/flaky"
	h := initSession(t, url, bearer(master))
	list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"text":"x"}}}`

	dropNext.Store(1)
	if r := post(t, url, h, list); r.status != http.StatusOK || len(r.result) == 0 || lists.Load() != 2 {
		t.Fatalf("a list call after one dropped connection: %s (upstream saw %d lists), want success on the retry", r.body, lists.Load())
	}
	dropNext.Store(1)
	if r := post(t, url, h, call); r.rpcErr.Code != -32020 || calls.Load() != 1 {
		t.Fatalf("a tools/call on a dropped connection: %s (upstream saw %d calls), want an error and no retry", r.body, calls.Load())
	}
	// Two more failures make three in a row: the breaker opens.
	dropNext.Store(100)
	post(t, url, h, call)
	post(t, url, h, call)
	seen := calls.Load()
	r := post(t, url, h, call)
	if r.rpcErr.Code != -32020 || !strings.Contains(r.rpcErr.Message, `"flaky" is unavailable since `) || calls.Load() != seen {
		t.Fatalf("open breaker: %s (upstream calls %d -> %d), want a fast refusal that says since when", r.body, seen, calls.Load())
	}
	// After the cooldown one probe goes through; it succeeds and closes it.
	url = g.URL() + "/mcp/brief"
	h = initSession(t, url, bearer(master))
	dropNext.Store(100)
	for range 3 {
		post(t, url, h, call)
	}
	dropNext.Store(0)
	bustest.Eventually(t, 30*time.Second, "a call after the cooldown succeeds", func() error {
		r := post(t, url, h, call)
		if strings.Contains(string(r.body), `"text":"x"`) {
			return nil
		}
		if !strings.Contains(r.rpcErr.Message, `"brief" is unavailable since `) {
			t.Fatalf("after the cooldown: %s", r.body)
		}
		return fmt.Errorf("the breaker still refuses: %s", r.body)
	})
	if r := post(t, url, h, call); !strings.Contains(string(r.body), `"text":"x"`) {
		t.Fatalf("after a successful probe: %s", r.body)
	}
}

// A stdio server defined through the API (not the config file) is refused.
func TestStdioOnlyFromConfig(t *testing.T) {
	spec := bus.ServerSpec{Name: "sneaky", Transport: "stdio", Command: "/bin/sh", Args: []string{"-c", "echo pwned"}, Source: "api"}
	nc := startGateway(t, "general_settings: {master_key: k}\nmcp_servers: {}\n", nil)
	conn := roleConn(t, nc.Gateway, bus.RoleWorkers)
	_, err := toolworkers.Start(conn, spec, toolworkers.Options{})
	if err == nil || !strings.Contains(err.Error(), "only this process's config file may name one") {
		t.Fatalf("an API-made stdio server: %v", err)
	}
}

// initSessionQuiet and postQuiet are for goroutines, where t.Fatal must not run.
func initSessionQuiet(url string, header http.Header) http.Header {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(initBody))
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil
	}
	h := header.Clone()
	h.Set("Mcp-Session-Id", resp.Header.Get("Mcp-Session-Id"))
	return h
}

func postQuiet(url string, header http.Header, body string) string {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	recordBody(b)
	return string(b)
}

// An upstream that refuses the credential a request sent itself (x-mcp-
// <server>-authorization) is reported as refusing that one, not the
// gateway's configured credentials; with the configured one, the error says
// so.
func TestRefusedCredentialIsNamed(t *testing.T) {
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		demo.Handler("guarded").ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)
	for _, tc := range []struct {
		name, configured, sent, says string
	}{
		{"own credential", "good", "Bearer wrong", "refused the credentials this request sent (its x-mcp-guarded-* headers)"},
		{"configured credential", "wrong", "", "refused the gateway's configured credentials"},
	} {
		g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  guarded: {url: %q, auth_type: bearer_token, auth_value: %s}\n",
			master, guarded.URL+"/mcp", tc.configured), nil)
		h := bearer(master)
		if tc.sent != "" {
			h.Set("X-Mcp-Guarded-Authorization", tc.sent)
		}
		s := initSession(t, g.URL()+"/mcp/guarded", h)
		r := post(t, g.URL()+"/mcp/guarded", s, rpc("tools/list", 2, `{}`))
		if !strings.Contains(r.rpcErr.Message, tc.says) {
			t.Errorf("%s: %s, want %q", tc.name, r.body, tc.says)
		}
	}
}

// LiteLLM's documented shape: auth_type without auth_value. Each request
// brings the credential in x-mcp-auth, which goes upstream in the auth
// type's header, to that server only; a request without one is refused by
// the upstream, and the error says what to send.
func TestCredentialFromRequest(t *testing.T) {
	mcpHandler := demo.Handler("guarded") // one: it holds the sessions
	guarded := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer user-7-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mcpHandler.ServeHTTP(w, r)
	}))
	t.Cleanup(guarded.Close)
	other, otherRec := upstream(t, "other")
	registerSecret("user-7-token")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers:\n  guarded: {url: %q, transport: http, auth_type: bearer_token}\n  other: {url: %q}\n",
		master, guarded.URL+"/mcp", other), nil)

	h := bearer(master)
	h.Set("X-Mcp-Auth", "user-7-token")
	s := initSession(t, g.URL()+"/mcp", h)
	if r := post(t, g.URL()+"/mcp", s, rpc("tools/call", 2, `{"name":"guarded__echo","arguments":{"text":"with my token"}}`)); !strings.Contains(string(r.body), "with my token") {
		t.Fatalf("a call bringing x-mcp-auth: %s", r.body)
	}
	if r := post(t, g.URL()+"/mcp", s, rpc("tools/call", 3, `{"name":"other__echo","arguments":{"text":"x"}}`)); !strings.Contains(string(r.body), `"x"`) {
		t.Fatalf("other: %s", r.body)
	}
	for _, hs := range otherRec.seen() {
		if strings.Contains(fmt.Sprint(hs), "user-7-token") {
			t.Fatalf("x-mcp-auth reached a server that has its own credential: %v", hs)
		}
	}
	s2 := initSession(t, g.URL()+"/mcp/guarded", bearer(master))
	r := post(t, g.URL()+"/mcp/guarded", s2, rpc("tools/list", 2, `{}`))
	if !strings.Contains(r.rpcErr.Message, "brought no credential") || !strings.Contains(r.rpcErr.Message, "x-mcp-auth") {
		t.Fatalf("a request without a credential: %s", r.body)
	}
}
