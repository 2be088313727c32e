package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/mcpbus/mcpbus/bus"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/internal/bustest"
)

// admin calls the LiteLLM-compatible admin API with the master key.
func admin(t *testing.T, base, method, path string, body any) (int, map[string]any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, base+path, rd)
	req.Header.Set("Authorization", "Bearer "+master)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if path != "/key/generate" { // the one answer that shows a key, once
		recordBody(raw)
	}
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	if out == nil {
		out = map[string]any{"_raw": string(raw)}
	}
	return resp.StatusCode, out
}

func generateKey(t *testing.T, base string, req map[string]any) string {
	t.Helper()
	status, out := admin(t, base, http.MethodPost, "/key/generate", req)
	key, _ := out["key"].(string)
	if status != http.StatusOK || !strings.HasPrefix(key, "sk-") {
		t.Fatalf("/key/generate %v: HTTP %d %v", req, status, out)
	}
	registerSecret(key)
	return key
}

// secondIngress runs another ingress on the same NATS server, as a second
// ingress process would, serving HTTP on its own loopback port.
func secondIngress(t *testing.T, g *testGateway, ranges ...netip.Prefix) string {
	t.Helper()
	nc := roleConn(t, g.Gateway, bus.RoleIngress)
	if len(ranges) == 0 {
		ranges = config.DefaultInternalIPRanges()
	}
	ing := ingress.New(ingress.Options{NC: nc, Log: slog.New(slog.NewTextHandler(g.logs, nil)), InternalRanges: ranges})
	nc.Flush()
	srv := httptest.NewServer(ing.Handler())
	t.Cleanup(func() { srv.Close(); ing.Close(); nc.Close() })
	return srv.URL
}

func rpc(method string, id int, params string) string {
	if params == "" {
		return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, id, method)
	}
	return fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q,"params":%s}`, id, method, params)
}

// Keys and teams: effective servers = key ∩ team, tool permissions per server,
// every denial explicit with its reason, nothing silently empty.
func TestVirtualKeyPermissions(t *testing.T) {
	a, _ := upstream(t, "a")
	b, _ := upstream(t, "b")
	db, _ := upstream(t, "internal-db")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  a: {url: %q}
  b: {url: %q}
  internal-db: {url: %q}
`, master, a, b, db), nil)
	status, team := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_alias": "platform", "mcp_servers": []string{"a", "internal-db"}})
	teamID, _ := team["team_id"].(string)
	if status != http.StatusOK || teamID == "" {
		t.Fatalf("/team/new: HTTP %d %v", status, team)
	}
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "ci-bot", "team_id": teamID,
		"mcp_servers": []string{"a", "b", "internal-db"}, "mcp_tool_permissions": map[string][]string{"internal-db": {"echo"}}})
	h := bearer(key)

	// a: in key and team.
	url := g.URL() + "/mcp/a"
	s := initSession(t, url, h)
	if r := post(t, url, s, rpc("tools/call", 2, `{"name":"add","arguments":{"a":1,"b":2}}`)); !strings.Contains(string(r.body), `"sum":3`) {
		t.Fatalf("permitted call: %s", r.body)
	}
	// b: in the key, not in the team -> denied with the reason.
	r := post(t, g.URL()+"/mcp/b", h, initBody)
	if r.rpcErr.Code != -32030 || r.rpcErr.Message != "key 'ci-bot' may not use MCP server 'b'" {
		t.Fatalf("server outside the team: HTTP %d %s", r.status, r.body)
	}
	// internal-db: only echo is listed and callable.
	url = g.URL() + "/mcp/internal-db"
	s = initSession(t, url, h)
	r = post(t, url, s, rpc("tools/list", 3, ""))
	var list struct {
		Tools []struct{ Name string }
	}
	json.Unmarshal(r.result, &list)
	if len(list.Tools) != 1 || list.Tools[0].Name != "echo" {
		t.Fatalf("tools/list under tool permissions: %s", r.result)
	}
	r = post(t, url, s, rpc("tools/call", 4, `{"name":"add","arguments":{"a":1,"b":2}}`))
	if r.rpcErr.Code != -32030 || r.rpcErr.Message != "key 'ci-bot' may not call tool 'add' on server 'internal-db'" {
		t.Fatalf("tool outside the permissions: %s", r.body)
	}
	// A non-admin key may not manage keys: REST 403 with the reason.
	req, _ := http.NewRequest(http.MethodGet, g.URL()+"/key/list", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, _ := http.DefaultClient.Do(req)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "master key") {
		t.Fatalf("non-admin /key/list: HTTP %d %s", resp.StatusCode, body)
	}
	assertNoSecrets(t, g, key)
	if strings.Contains(string(body), key) {
		t.Fatal("an error body echoes the key")
	}
}

// An external caller learns nothing about internal servers on any surface:
// every way of naming one answers like an unknown server.
func TestExternalCallerProbesInternalServer(t *testing.T) {
	pub, _ := upstream(t, "pub")
	priv, recPriv := upstream(t, "priv")
	// The test client is on 127.0.0.1; only 10/8 counts as internal here.
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_internal_ip_ranges: ["10.0.0.0/8"]}
mcp_servers:
  pub: {url: %q, available_on_public_internet: true}
  priv: {url: %q}
`, master, pub, priv), nil)
	probes := []struct {
		name string
		url  string
		hdr  http.Header
	}{
		{"path", "/mcp/priv", nil},
		{"query", "/mcp?server=priv", nil},
		{"x-litellm-mcp-server", "/mcp", http.Header{"X-Litellm-Mcp-Server": {"priv"}}},
		{"x-mcp-servers", "/mcp", http.Header{"X-Mcp-Servers": {"priv"}}},
	}
	for _, p := range probes {
		h := bearer(master)
		for k, v := range p.hdr {
			h[k] = v
		}
		r := post(t, g.URL()+p.url, h, initBody)
		if r.status != http.StatusNotFound || r.rpcErr.Message != `unknown MCP server "priv"` {
			t.Errorf("%s: HTTP %d %s, want the unknown-server 404", p.name, r.status, r.body)
		}
	}
	// A session on the public server cannot be pointed at the internal one.
	s := initSession(t, g.URL()+"/mcp/pub", bearer(master))
	s.Set("X-Litellm-Mcp-Server", "priv")
	if r := post(t, g.URL()+"/mcp", s, rpc("tools/call", 5, `{"name":"echo","arguments":{"text":"x"}}`)); r.status != http.StatusNotFound {
		t.Errorf("session redirected to the internal server: HTTP %d %s", r.status, r.body)
	}
	// With no selection, /mcp aggregates the servers this caller may see:
	// the public one alone, under its prefixed names (as when it sees more).
	s = initSession(t, g.URL()+"/mcp", bearer(master))
	if r := post(t, g.URL()+"/mcp", s, rpc("tools/call", 6, `{"name":"pub__echo","arguments":{"text":"x"}}`)); !strings.Contains(string(r.body), `"x"`) {
		t.Errorf("/mcp for an external caller: %s", r.body)
	}
	if n := len(recPriv.seen()); n != 0 {
		t.Errorf("external probes caused %d requests to the internal server", n)
	}
}

// X-Forwarded-For counts only from a trusted proxy, N hops from the right.
func TestForwardedForFromTrustedProxiesOnly(t *testing.T) {
	pub, _ := upstream(t, "pub")
	priv, _ := upstream(t, "priv")
	servers := fmt.Sprintf("mcp_servers:\n  pub: {url: %q, available_on_public_internet: true}\n  priv: {url: %q}\n", pub, priv)
	reach := func(g *testGateway, xff ...string) int {
		h := bearer(master)
		for _, x := range xff {
			h.Add("X-Forwarded-For", x)
		}
		return post(t, g.URL()+"/mcp/priv", h, initBody).status
	}
	// The peer (127.0.0.1) is a trusted proxy; 10/8 is internal.
	trusted := startGateway(t, fmt.Sprintf(`general_settings: {master_key: %s, mcp_internal_ip_ranges: ["10.0.0.0/8"],
  use_x_forwarded_for: true, mcp_trusted_proxy_ranges: ["127.0.0.1/32"]}
`, master)+servers, nil)
	for _, c := range []struct {
		xff  []string
		want int
	}{
		{[]string{"10.1.2.3"}, http.StatusOK},                // internal client behind the proxy
		{[]string{"8.8.8.8"}, http.StatusNotFound},           // external client
		{[]string{"10.9.9.9, 8.8.8.8"}, http.StatusNotFound}, // spoofed leftmost entry is ignored
		{[]string{"8.8.8.8", "10.1.2.3"}, http.StatusOK},     // several header lines, rightmost counts
		{[]string{"not-an-ip"}, http.StatusNotFound},         // garbage fails closed
		{nil, http.StatusNotFound},                           // a trusted proxy that sent no XFF: nothing to trust
		{[]string{"[fd00::1]:443"}, http.StatusNotFound},     // IPv6, not in 10/8
	} {
		if got := reach(trusted, c.xff...); got != c.want {
			t.Errorf("trusted proxy, XFF %q: HTTP %d, want %d", c.xff, got, c.want)
		}
	}
	// Two trusted hops: the client is the second entry from the right.
	twoHops := startGateway(t, fmt.Sprintf(`general_settings: {master_key: %s, mcp_internal_ip_ranges: ["10.0.0.0/8"],
  use_x_forwarded_for: true, mcp_trusted_proxy_ranges: ["127.0.0.1/32"], mcp_xff_num_trusted_hops: 2}
`, master)+servers, nil)
	if got := reach(twoHops, "10.1.2.3, 192.0.2.7"); got != http.StatusOK {
		t.Errorf("two hops, client 10.1.2.3: HTTP %d", got)
	}
	if got := reach(twoHops, "8.8.8.8, 10.1.2.3"); got != http.StatusNotFound {
		t.Errorf("two hops, client 8.8.8.8 (a spoofed internal hop on the right): HTTP %d", got)
	}
	if got := reach(twoHops, "10.1.2.3"); got != http.StatusNotFound {
		t.Errorf("two hops but one entry: HTTP %d, want external", got)
	}
	// The peer is not a trusted proxy: its XFF claim is ignored.
	untrusted := startGateway(t, fmt.Sprintf(`general_settings: {master_key: %s, mcp_internal_ip_ranges: ["10.0.0.0/8"],
  use_x_forwarded_for: true, mcp_trusted_proxy_ranges: ["192.168.0.0/16"]}
`, master)+servers, nil)
	if got := reach(untrusted, "10.1.2.3"); got != http.StatusNotFound {
		t.Errorf("spoofed XFF from an untrusted peer: HTTP %d, want 404", got)
	}
}

// Expiry, revocation mid-call on a second ingress, and a team change, each
// reaching every ingress. (The bounds only turn a change that never arrives
// into a failure.)
func TestKeyLifecycleAcrossIngresses(t *testing.T) {
	a, recA := upstream(t, "a")
	b, _ := upstream(t, "b")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}, b: {url: %q}}\n", master, a, b), nil)
	second := secondIngress(t, g)

	// Expiry: a key made with a duration works on the second ingress, and one
	// whose duration has passed is refused there as expired (said only of a
	// key that existed). A short key's first use may already be past its 1s,
	// so the working key is a longer one.
	fresh := generateKey(t, g.URL(), map[string]any{"key_alias": "hour-long", "duration": "1h"})
	if r := post(t, second+"/mcp/a", bearer(fresh), initBody); r.status != http.StatusOK {
		t.Fatalf("fresh key: HTTP %d %s", r.status, r.body)
	}
	short := generateKey(t, g.URL(), map[string]any{"key_alias": "short-lived", "duration": "1s"})
	var r rawResponse
	bustest.Eventually(t, 30*time.Second, "the 1s key is refused as expired", func() error {
		if r = post(t, second+"/mcp/a", bearer(short), initBody); r.status == http.StatusOK {
			return errors.New("initialize with it still succeeds")
		}
		return nil
	})
	if r.status != http.StatusUnauthorized || !strings.Contains(r.rpcErr.Message, "expired") {
		t.Fatalf("expired key: HTTP %d %s", r.status, r.body)
	}

	// Revoked mid-call: a slow call on the second ingress ends when the key is
	// deleted through the first. The key is deleted once the call has reached
	// the upstream; uncancelled, the call would end after its 30 s with a
	// result, so the answer, not a clock, tells whether it was cancelled.
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "doomed"})
	s := initSession(t, second+"/mcp/a", bearer(key))
	calls := recA.callCount()
	done := make(chan rawResponse, 1)
	go func() {
		done <- postRaw(second+"/mcp/a", s, rpc("tools/call", 9, `{"name":"slow","arguments":{"seconds":30,"steps":10}}`))
	}()
	bustest.Eventually(t, 30*time.Second, "the slow call reaches the upstream", func() error { return bustest.AtLeast("calls upstream", recA.callCount(), calls+1) })
	if status, out := admin(t, g.URL(), http.MethodPost, "/key/delete", map[string]any{"keys": []string{key}}); status != http.StatusOK {
		t.Fatalf("/key/delete: HTTP %d %v", status, out)
	}
	select {
	case r := <-done:
		if r.rpcErr.Code != -32031 || !strings.Contains(r.rpcErr.Message, "revoked") {
			t.Fatalf("the in-flight call of a revoked key ended with %s", r.body)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the in-flight call of a revoked key did not end")
	}
	if r := post(t, second+"/mcp/a", s, rpc("ping", 10, "")); r.status != http.StatusUnauthorized {
		t.Fatalf("revoked key after deletion: HTTP %d %s", r.status, r.body)
	}

	// A team change reaches the other ingress.
	_, team := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_alias": "ops", "mcp_servers": []string{"a"}})
	teamID, _ := team["team_id"].(string)
	member := generateKey(t, g.URL(), map[string]any{"key_alias": "member", "team_id": teamID})
	if r := post(t, second+"/mcp/b", bearer(member), initBody); r.rpcErr.Code != -32030 {
		t.Fatalf("b before the team change: %s", r.body)
	}
	if status, out := admin(t, g.URL(), http.MethodPost, "/team/update", map[string]any{"team_id": teamID, "mcp_servers": []string{"a", "b"}}); status != http.StatusOK {
		t.Fatalf("/team/update: HTTP %d %v", status, out)
	}
	bustest.Eventually(t, 30*time.Second, "the team change reaches the second ingress", func() error {
		if r := post(t, second+"/mcp/b", bearer(member), initBody); r.status != http.StatusOK || r.rpcErr.Code != 0 {
			return fmt.Errorf("initialize on b: HTTP %d %s", r.status, r.body)
		}
		return nil
	})
}

// rpm_limit holds across two ingress processes: 429 with Retry-After.
func TestRPMLimitAcrossIngresses(t *testing.T) {
	a, _ := upstream(t, "a")
	g := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {a: {url: %q}}\n", master, a), nil)
	second := secondIngress(t, g)
	key := generateKey(t, g.URL(), map[string]any{"key_alias": "metered", "rpm_limit": 5})
	// rpm_limit counts in the wall-clock minute: six requests that straddle
	// a minute's end are two windows, and all six pass (seen once in CI).
	if s := time.Now().Second(); s >= 55 {
		time.Sleep(time.Duration(61-s) * time.Second)
	}
	statuses := []int{}
	var last rawResponse
	for i := 0; i < 6; i++ {
		base := g.URL()
		if i%2 == 1 {
			base = second
		}
		last = post(t, base+"/mcp/a", bearer(key), initBody)
		statuses = append(statuses, last.status)
	}
	if fmt.Sprint(statuses) != "[200 200 200 200 200 429]" {
		t.Fatalf("statuses %v, want five 200s then 429 across the two ingresses", statuses)
	}
	if ra := last.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("429 without Retry-After: %v", last.header)
	}
	if !strings.Contains(last.rpcErr.Message, "'metered' is limited to 5 requests per minute") {
		t.Fatalf("429 body: %s", last.body)
	}
}

// postRaw is post for goroutines (no t).
func postRaw(url string, header http.Header, body string) rawResponse {
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header = header.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return rawResponse{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	out := rawResponse{status: resp.StatusCode, header: resp.Header}
	out.body, _ = io.ReadAll(resp.Body)
	recordBody(out.body)
	var m struct {
		Result json.RawMessage
		Error  *struct {
			Code    int
			Message string
		}
	}
	json.Unmarshal(out.body, &m)
	out.result = m.Result
	if m.Error != nil {
		out.rpcErr.Code, out.rpcErr.Message = m.Error.Code, m.Error.Message
	}
	return out
}
