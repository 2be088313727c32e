package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
)

// uiBrowser is a browser's view of the admin UI: a session cookie and its
// CSRF token, sent as the UI's scripts send them.
type uiBrowser struct {
	t          *testing.T
	base       string
	cookie     string
	csrf       string
	lastStatus int
}

func uiSignIn(t *testing.T, base, key string) *uiBrowser {
	t.Helper()
	b := &uiBrowser{t: t, base: base}
	status, body := b.do(http.MethodPost, "/ui/api/session", `{"key":"`+key+`"}`)
	if status != http.StatusOK {
		t.Fatalf("sign in: HTTP %d %s", status, body)
	}
	var ans struct{ CSRF string }
	_ = json.Unmarshal([]byte(body), &ans)
	if b.cookie == "" || ans.CSRF == "" {
		t.Fatalf("sign in: no cookie or CSRF token: %s", body)
	}
	b.csrf = ans.CSRF
	return b
}

func (b *uiBrowser) do(method, path, body string) (int, string) {
	b.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, b.base+path, rd)
	if b.cookie != "" {
		req.Header.Set("Cookie", bus.UISessionCookie+"="+b.cookie)
	}
	if b.csrf != "" && method != http.MethodGet {
		req.Header.Set(bus.UICSRFHeader, b.csrf)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == bus.UISessionCookie {
			b.cookie = c.Value
		}
	}
	data, _ := io.ReadAll(resp.Body)
	if path != "/key/generate" { // the new key, shown once
		recordBody(data)
	}
	return resp.StatusCode, string(data)
}

// The UI's session is a credential for the same admin API the CLI uses,
// verified by auth on every request: it makes keys and servers as the
// master key, is limited as a virtual key, ends when its key is revoked,
// and its live feed announces changes made through the API.
func TestUISessionUsesTheAdminAPI(t *testing.T) {
	up, _ := upstream(t, "docs")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  docs: {url: %q}
`, master, up), nil)
	admin := uiSignIn(t, g.URL(), master)

	// The live feed, open before the changes.
	events := sseEvents(t, admin, "/ui/api/events")
	waitEvent := func(want string) {
		t.Helper()
		deadline := time.After(30 * time.Second) // only a missing event gets here
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					t.Fatalf("the live feed ended waiting for %q", want)
				}
				if ev[0] == want {
					return
				}
			case <-deadline:
				t.Fatalf("no %q event on the live feed", want)
			}
		}
	}

	status, body := admin.do(http.MethodPost, "/key/generate", `{"key_alias":"from-the-ui","mcp_servers":["docs"],"mcp_tool_permissions":{"docs":["echo"]}}`)
	var key struct{ Key, Token string }
	if _ = json.Unmarshal([]byte(body), &key); status != http.StatusOK || key.Key == "" {
		t.Fatalf("/key/generate through the UI session: HTTP %d %s", status, body)
	}
	registerSecret(key.Key)
	waitEvent("auth")
	status, body = admin.do(http.MethodPost, "/v1/mcp/server", fmt.Sprintf(`{"server_name":"docs2","url":%q}`, up))
	if status != http.StatusOK {
		t.Fatalf("POST /v1/mcp/server through the UI session: HTTP %d %s", status, body)
	}
	waitEvent("servers")
	// An agent written through the API (the agents bucket).
	status, body = admin.do(http.MethodPost, "/v1/agents", `{"agent_name":"helper","agent_card_params":{"name":"Helper","url":"http://127.0.0.1:9/a2a","protocolVersion":"1.0"}}`)
	if status != http.StatusOK {
		t.Fatalf("POST /v1/agents through the UI session: HTTP %d %s", status, body)
	}
	waitEvent("agents")

	// The same request without the CSRF token is refused.
	csrf := admin.csrf
	admin.csrf = ""
	if status, body := admin.do(http.MethodPost, "/key/generate", `{}`); status != http.StatusForbidden || !strings.Contains(body, "CSRF") {
		t.Fatalf("/key/generate without the CSRF token: HTTP %d %s", status, body)
	}
	admin.csrf = csrf

	// A virtual key's session has the key's rights only.
	user := uiSignIn(t, g.URL(), key.Key)
	if status, body := user.do(http.MethodPost, "/key/generate", `{}`); status != http.StatusForbidden {
		t.Fatalf("a virtual key's session making a key: HTTP %d %s", status, body)
	}
	status, body = user.do(http.MethodPost, "/mcp-rest/tools/call", `{"server_id":"docs","name":"add","arguments":{"a":1,"b":2}}`)
	if status != http.StatusForbidden || !strings.Contains(body, "add") {
		t.Fatalf("a tool the key may not call, through its session: HTTP %d %s", status, body)
	}
	status, body = user.do(http.MethodPost, "/mcp-rest/tools/call", `{"server_id":"docs","name":"echo","arguments":{"text":"hi"}}`)
	if status != http.StatusOK || !strings.Contains(body, "hi") {
		t.Fatalf("the key's tool through its session: HTTP %d %s", status, body)
	}
	// Revoking the key ends its session.
	if status, body := admin.do(http.MethodPost, "/key/delete", `{"keys":["`+key.Key+`"]}`); status != http.StatusOK {
		t.Fatalf("/key/delete: HTTP %d %s", status, body)
	}
	if status, _ := user.do(http.MethodGet, "/ui/api/session", ""); status != http.StatusUnauthorized {
		t.Fatalf("the revoked key's session: HTTP %d, want 401", status)
	}
	assertNoSecrets(t, g, master)
}

// sseEvents reads an event stream's events (name and data) until it ends.
func sseEvents(t *testing.T, b *uiBrowser, path string) <-chan [2]string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	req.Header.Set("Cookie", bus.UISessionCookie+"="+b.cookie)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %v %v", path, err, resp)
	}
	out := make(chan [2]string, 256)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var name string
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(line, "data: "); ok {
				out <- [2]string{name, v}
			}
		}
	}()
	return out
}

// The usage pages' figures and live tail: the master key sees every call,
// a virtual key its own only.
func TestUIUsageIsScopedToTheCaller(t *testing.T) {
	up, _ := upstream(t, "docs")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s}
mcp_servers:
  docs: {url: %q}
`, master, up), nil)
	admin := uiSignIn(t, g.URL(), master)
	keys := map[string]string{}
	for _, alias := range []string{"alice", "bob"} {
		status, body := admin.do(http.MethodPost, "/key/generate", `{"key_alias":"`+alias+`"}`)
		var k struct{ Key string }
		if _ = json.Unmarshal([]byte(body), &k); status != http.StatusOK || k.Key == "" {
			t.Fatalf("/key/generate %s: HTTP %d %s", alias, status, body)
		}
		registerSecret(k.Key)
		keys[alias] = k.Key
	}
	alice := uiSignIn(t, g.URL(), keys["alice"])
	adminTail, aliceTail := sseEvents(t, admin, "/ui/api/usage/tail"), sseEvents(t, alice, "/ui/api/usage/tail")

	calls := map[string]int{"alice": 2, "bob": 3}
	for alias, n := range calls {
		for i := range n {
			status, _, body := rest(t, http.MethodPost, g.URL()+"/mcp-rest/tools/call", keys[alias],
				fmt.Sprintf(`{"server_id":"docs","name":"echo","arguments":{"text":"%s-%d"}}`, alias, i))
			if status != http.StatusOK {
				t.Fatalf("%s call: HTTP %d %s", alias, status, body)
			}
		}
	}
	// The master's tail sees all five calls; alice's only hers.
	seen := map[string]int{}
	deadline := time.After(30 * time.Second) // only missing events get here
	for seen["alice"]+seen["bob"] < 5 {
		select {
		case ev, ok := <-adminTail:
			if !ok {
				t.Fatal("the master's tail ended")
			}
			var u bus.UsageEvent
			if ev[0] != "call" || json.Unmarshal([]byte(ev[1]), &u) != nil {
				t.Fatalf("tail event %v", ev)
			}
			seen[u.KeyAlias]++
		case <-deadline:
			t.Fatalf("the master's tail saw %v, want alice 2 and bob 3", seen)
		}
	}
	for range 2 {
		select {
		case ev := <-aliceTail:
			if !strings.Contains(ev[1], `"key_alias":"alice"`) {
				t.Fatalf("alice's tail: %v", ev)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("alice's tail missed her calls")
		}
	}

	var all, mine struct {
		Rows []struct {
			Name  [2]string
			Calls int
		}
		Total struct{ Calls int }
		Scope string
	}
	status, body := admin.do(http.MethodGet, "/ui/api/usage?since=1h&by=key", "")
	if _ = json.Unmarshal([]byte(body), &all); status != http.StatusOK || all.Total.Calls != 5 || all.Scope != "all" {
		t.Fatalf("the master's usage: HTTP %d %s", status, body)
	}
	status, body = alice.do(http.MethodGet, "/ui/api/usage?since=1h&by=key", "")
	if _ = json.Unmarshal([]byte(body), &mine); status != http.StatusOK || mine.Total.Calls != 2 || len(mine.Rows) != 1 ||
		mine.Rows[0].Name[0] != "alice" || mine.Scope != "key alice" {
		t.Fatalf("alice's usage: HTTP %d %s", status, body)
	}
	// Narrowed to one key, by its token.
	var bobs struct{ Total struct{ Calls int } }
	status, body = admin.do(http.MethodGet, "/ui/api/usage?since=1h&key="+bus.HashKey(keys["bob"]), "")
	if _ = json.Unmarshal([]byte(body), &bobs); status != http.StatusOK || bobs.Total.Calls != 3 {
		t.Fatalf("usage of bob's key: HTTP %d %s", status, body)
	}
	if status, body := admin.do(http.MethodGet, "/ui/api/usage?key="+keys["bob"], ""); status != http.StatusBadRequest || strings.Contains(body, keys["bob"]) {
		t.Fatalf("usage?key=<the key itself>: HTTP %d %s; want 400 that does not repeat it", status, body)
	}
	if status, body := admin.do(http.MethodGet, "/ui/api/usage?since=30d", ""); status != http.StatusBadRequest || !strings.Contains(body, "since") {
		t.Fatalf("since=30d: HTTP %d %s", status, body)
	}
}

// The Cluster page sees every service on the bus and each server's
// workers; the Network page shows the ranges and classifies an address.
// Both are the master key's only.
func TestUIClusterAndNetwork(t *testing.T) {
	up, _ := upstream(t, "docs")
	g := startGateway(t, fmt.Sprintf(`
general_settings: {master_key: %s, mcp_internal_ip_ranges: [10.0.0.0/8, 127.0.0.0/8]}
mcp_servers:
  docs: {url: %q}
`, master, up), nil)
	if status, _, body := rest(t, http.MethodPost, g.URL()+"/mcp-rest/tools/call", master, `{"server_id":"docs","name":"echo","arguments":{"text":"x"}}`); status != http.StatusOK {
		t.Fatalf("call: HTTP %d %s", status, body)
	}
	admin := uiSignIn(t, g.URL(), master)
	status, body := admin.do(http.MethodGet, "/ui/api/cluster", "")
	var cl struct {
		Services []struct {
			Name      string
			Instances []struct{ Version string }
		}
		Servers map[string]struct{ Replicas, Requests, InFlight int }
	}
	if err := json.Unmarshal([]byte(body), &cl); status != http.StatusOK || err != nil {
		t.Fatalf("/ui/api/cluster: HTTP %d %s", status, body)
	}
	names := map[string]int{}
	for _, s := range cl.Services {
		names[s.Name] = len(s.Instances)
	}
	for _, want := range []string{bus.ServiceAuth, bus.ServiceRegistry, bus.ServiceRouter, bus.ServiceWorker} {
		if names[want] == 0 {
			t.Errorf("/ui/api/cluster: no %s in %v", want, names)
		}
	}
	if d := cl.Servers["docs"]; d.Replicas != 1 || d.Requests < 1 {
		t.Errorf("/ui/api/cluster: docs workers %+v, want 1 replica that served the call", d)
	}

	status, body = admin.do(http.MethodGet, "/ui/api/network?ip=10.9.8.7", "")
	if status != http.StatusOK || !strings.Contains(body, `"address":{"address":"10.9.8.7","class":"internal","range":"10.0.0.0/8"}`) ||
		!strings.Contains(body, `"you":{"address":"127.0.0.1","class":"internal","range":"127.0.0.0/8"}`) {
		t.Fatalf("/ui/api/network?ip=10.9.8.7: HTTP %d %s", status, body)
	}
	if status, body := admin.do(http.MethodGet, "/ui/api/network?ip=203.0.113.9", ""); status != http.StatusOK ||
		!strings.Contains(body, `"address":{"address":"203.0.113.9","class":"external"}`) {
		t.Fatalf("/ui/api/network?ip=203.0.113.9: HTTP %d %s", status, body)
	}
	if status, body := admin.do(http.MethodGet, "/ui/api/network?ip=not-an-ip", ""); status != http.StatusBadRequest || !strings.Contains(body, "ip:") {
		t.Fatalf("/ui/api/network?ip=not-an-ip: HTTP %d %s", status, body)
	}

	status, body = admin.do(http.MethodPost, "/key/generate", `{"key_alias":"plain"}`)
	var k struct{ Key string }
	if _ = json.Unmarshal([]byte(body), &k); status != http.StatusOK {
		t.Fatalf("/key/generate: HTTP %d %s", status, body)
	}
	registerSecret(k.Key)
	user := uiSignIn(t, g.URL(), k.Key)
	for _, path := range []string{"/ui/api/cluster", "/ui/api/network"} {
		if status, body := user.do(http.MethodGet, path, ""); status != http.StatusForbidden || !strings.Contains(body, "only the master key") {
			t.Errorf("a virtual key on %s: HTTP %d %s", path, status, body)
		}
	}
}

// A gateway without a master key (open mode, loopback only) takes no key
// anywhere, and the UI signs in without one, as the anonymous caller (the
// admin API and pages need a master key, as without the UI); with a master
// key, an empty key is refused.
func TestUISignInWithoutAKeyOnlyInOpenMode(t *testing.T) {
	open := startGateway(t, "mcp_servers: {}\n", nil)
	b := uiSignIn(t, open.URL(), "")
	if status, body := b.do(http.MethodGet, "/ui/api/session", ""); status != http.StatusOK || !strings.Contains(body, `"caller":"anonymous"`) {
		t.Fatalf("open mode session: HTTP %d %s", status, body)
	}
	if status, body := b.do(http.MethodGet, "/ui/api/usage", ""); status != http.StatusOK {
		t.Fatalf("open mode /ui/api/usage: HTTP %d %s", status, body)
	}
	closed := startGateway(t, fmt.Sprintf("general_settings: {master_key: %s}\nmcp_servers: {}\n", master), nil)
	c := &uiBrowser{t: t, base: closed.URL()}
	if status, body := c.do(http.MethodPost, "/ui/api/session", `{"key":""}`); status != http.StatusBadRequest || c.cookie != "" {
		t.Fatalf("an empty key with a master key set: HTTP %d %s (cookie %q)", status, body, c.cookie)
	}
}
