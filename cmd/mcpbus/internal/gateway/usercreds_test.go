package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/nats-io/nats.go/jetstream"
)

// Per-user credentials (bring your own key) on a server with is_byok: each
// user stores their own token, and the upstream sees the caller's on the
// caller's calls, never another user's nor the gateway key; a user without
// one is refused before the upstream with the path to add one; revoking
// (the user, or the master key for anyone) makes the next call fail; no
// answer and no log holds a token, and the bucket holds them sealed.
func TestUserCredentialsBYOK(t *testing.T) {
	gh := &authByText{next: demo.Handler("gh"), auth: map[string]string{}}
	srv := httptest.NewServer(gh)
	t.Cleanup(srv.Close)
	ghURL := srv.URL + "/mcp"
	otherURL, _ := upstream(t, "other")
	g := startGateway(t, fmt.Sprintf(`general_settings: {master_key: %s}
mcp_servers:
  gh: {url: %q, transport: http, auth_type: bearer_token, is_byok: true}
  other: {url: %q, transport: http}
  locked: {url: %q, transport: http, auth_type: token, is_byok: true}
`, master, ghURL, otherURL, otherURL), map[string]string{"MCPBUS_SALT_KEY": "byok-test-salt-key-0123456789"})
	base := g.URL()
	perms := map[string]any{"mcp_servers": []string{"gh", "other"}}
	alice := generateKey(t, base, map[string]any{"key_alias": "alice-key", "user_id": "alice", "object_permission": perms})
	alice2 := generateKey(t, base, map[string]any{"key_alias": "alice-laptop", "user_id": "alice", "object_permission": perms})
	bob := generateKey(t, base, map[string]any{"key_alias": "bob-key", "user_id": "bob", "object_permission": perms})
	carol := generateKey(t, base, map[string]any{"key_alias": "carol-key", "user_id": "carol", "object_permission": perms})
	const aliceTok, bobTok = "ghp_ALICE-token-5b1e", "ghp_BOB-token-93c2"
	registerSecret(aliceTok, bobTok)

	credPath := base + "/v1/mcp/server/gh/user-credential"
	for who, c := range map[string][2]string{"alice": {alice, aliceTok}, "bob": {bob, bobTok}} {
		status, _, body := rest(t, http.MethodPost, credPath, c[0], `{"credential": "`+c[1]+`"}`)
		if status != http.StatusOK || !strings.Contains(body, `"kind":"byok"`) || strings.Contains(body, c[1]) {
			t.Fatalf("%s stores a credential: HTTP %d %s", who, status, body)
		}
	}

	call := func(key, text string) rawResponse {
		t.Helper()
		s := initSession(t, base+"/mcp/gh", bearer(key))
		return post(t, base+"/mcp/gh", s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"`+text+`"}}`))
	}
	for _, tc := range []struct{ key, tok, text string }{{alice, aliceTok, "a1"}, {bob, bobTok, "b1"}, {alice2, aliceTok, "a2"}} {
		r := call(tc.key, tc.text)
		if r.rpcErr.Code != 0 || !strings.Contains(string(r.result), tc.text) {
			t.Fatalf("call with a stored credential: %s", r.body)
		}
		if got := gh.authOf(tc.text); got != "Bearer "+tc.tok {
			t.Errorf("the upstream got Authorization %q, want the caller's own token", bus.Shorten(got, 12))
		}
	}
	for _, k := range []string{alice, alice2, bob, master} {
		if gh.sawValue(k) {
			t.Fatalf("a gateway key reached the upstream")
		}
	}

	// Carol has none: refused before the upstream, told how to add one.
	r := call(carol, "c1")
	if r.rpcErr.Data["mcpbus_code"] != bus.ErrUserCredentialRequired.Code || !strings.Contains(r.rpcErr.Message, "POST /v1/mcp/server/gh/user-credential") {
		t.Fatalf("a caller without a credential: %s", r.body)
	}
	if gh.authOf("c1") != "" || gh.called("c1") {
		t.Fatalf("a call without a credential reached the upstream")
	}

	// Lists name servers, never tokens; the master key lists a server's users.
	status, _, body := rest(t, http.MethodGet, base+"/v1/mcp/user-credentials", alice2, "")
	if status != http.StatusOK || !strings.Contains(body, `"server_id":"gh"`) || strings.Contains(body, aliceTok) {
		t.Fatalf("alice's list: HTTP %d %s", status, body)
	}
	status, _, body = rest(t, http.MethodGet, base+"/v1/mcp/server/gh/user-credentials", master, "")
	var all bus.UserCredentialList
	if json.Unmarshal([]byte(body), &all) != nil || status != http.StatusOK || len(all.Credentials) != 2 ||
		all.Credentials[0].UserID != "alice" || all.Credentials[1].UserID != "bob" || strings.Contains(body, "ghp_") {
		t.Fatalf("the server's users: HTTP %d %s", status, body)
	}
	if status, _, body = rest(t, http.MethodGet, base+"/v1/mcp/server/gh/user-credentials", bob, ""); status != http.StatusForbidden {
		t.Fatalf("a user lists everyone's: HTTP %d %s", status, body)
	}

	// At rest: sealed, naming its key.
	kv, err := jetstreamKV(t, g)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(context.Background(), bus.UserCredentialKey("user:alice", "gh"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(entry.Value()), aliceTok) || !strings.Contains(string(entry.Value()), bus.SealedPrefix) {
		t.Fatalf("the stored credential is not sealed: %.60s", entry.Value())
	}

	// Alice revokes hers; the master key revokes Bob's. Each next call fails.
	if status, _, body = rest(t, http.MethodDelete, credPath, alice2, ""); status != http.StatusOK {
		t.Fatalf("alice revokes: HTTP %d %s", status, body)
	}
	refusedSoon(t, func() rawResponse { return call(alice, "a3") })
	if status, _, body = rest(t, http.MethodDelete, credPath+"?user_id=bob", alice, ""); status != http.StatusForbidden {
		t.Fatalf("a user revokes another's: HTTP %d %s", status, body)
	}
	if status, _, body = rest(t, http.MethodDelete, credPath+"?user_id=bob", master, ""); status != http.StatusOK {
		t.Fatalf("the master key revokes bob's: HTTP %d %s", status, body)
	}
	refusedSoon(t, func() rawResponse { return call(bob, "b3") })
	if status, _, body = rest(t, http.MethodDelete, credPath, bob, ""); status != http.StatusNotFound {
		t.Fatalf("revoking what is gone: HTTP %d %s", status, body)
	}
	assertNoSecrets(t, g, aliceTok, bobTok)
}

// authByText is an upstream that records the Authorization of each
// tools/call by the text it echoes, and every header value it saw.
type authByText struct {
	next http.Handler
	mu   sync.Mutex
	auth map[string]string
	all  []string
}

func (a *authByText) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		Method string
		Params struct{ Arguments struct{ Text string } }
	}
	_ = json.Unmarshal(body, &m)
	a.mu.Lock()
	if m.Method == "tools/call" {
		a.auth[m.Params.Arguments.Text] = r.Header.Get("Authorization")
	}
	a.all = append(a.all, fmt.Sprint(r.Header))
	a.mu.Unlock()
	a.next.ServeHTTP(w, r)
}

func (a *authByText) authOf(text string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.auth[text]
}

func (a *authByText) called(text string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.auth[text]
	return ok
}

func (a *authByText) sawValue(v string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, h := range a.all {
		if strings.Contains(h, v) {
			return true
		}
	}
	return false
}

// refusedSoon calls until the call is refused for want of a credential: a
// revocation reaches the worker replicas on the bus, beside the answer to
// the DELETE, so the first call after it may still be on its way.
func refusedSoon(t *testing.T, call func() rawResponse) {
	t.Helper()
	for range 20 {
		if r := call(); r.rpcErr.Data["mcpbus_code"] == bus.ErrUserCredentialRequired.Code {
			return
		}
	}
	t.Fatalf("calls still succeed after the credential was revoked")
}

func jetstreamKV(t *testing.T, g *testGateway) (jetstream.KeyValue, error) {
	js, err := jetstreamFor(testConn(t, g.Gateway))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return js.KeyValue(ctx, bus.BucketUserCredentials)
}

// Who may store what: only servers that take per-user credentials, that
// the caller's key may use and sees; bad bodies are named; a caller without
// a key is refused.
func TestUserCredentialsRefused(t *testing.T) {
	url, _ := upstream(t, "gh")
	g := startGateway(t, fmt.Sprintf(`general_settings: {master_key: %s}
mcp_servers:
  gh: {url: %q, transport: http, auth_type: bearer_token, is_byok: true}
  locked: {url: %q, transport: http, auth_type: token, is_byok: true}
  shared: {url: %q, transport: http}
`, master, url, url, url), map[string]string{"MCPBUS_SALT_KEY": "byok-test-salt-key-0123456789"})
	base := g.URL()
	key := generateKey(t, base, map[string]any{"key_alias": "dana-key", "user_id": "dana", "object_permission": map[string]any{"mcp_servers": []string{"gh", "shared"}}})
	const tok = "tok-REFUSED-4d2a"
	registerSecret(tok)
	for _, tc := range []struct {
		name, path, key, body string
		status                int
		says                  string
	}{
		{"not permitted", "/v1/mcp/server/locked/user-credential", key, `{"credential": "` + tok + `"}`, http.StatusForbidden, "may not use MCP server 'locked'"},
		{"no such server", "/v1/mcp/server/nope/user-credential", key, `{"credential": "` + tok + `"}`, http.StatusNotFound, `unknown MCP server \"nope\"`},
		{"not byok", "/v1/mcp/server/shared/user-credential", key, `{"credential": "` + tok + `"}`, http.StatusBadRequest, "does not take per-user credentials"},
		{"misspelt field", "/v1/mcp/server/gh/user-credential", key, `{"credentail": "` + tok + `"}`, http.StatusBadRequest, "credentail: not a field"},
		{"no credential", "/v1/mcp/server/gh/user-credential", key, `{}`, http.StatusBadRequest, "credential: required"},
		{"a line break", "/v1/mcp/server/gh/user-credential", key, `{"credential": "a\nb` + tok + `"}`, http.StatusBadRequest, "printable"},
		{"in the past", "/v1/mcp/server/gh/user-credential", key, `{"credential": "` + tok + `", "expires_at": "2001-01-01T00:00:00Z"}`, http.StatusBadRequest, "expires_at"},
		{"too long", "/v1/mcp/server/gh/user-credential", key, `{"credential": "` + strings.Repeat("x", bus.MaxUserCredentialLen+1) + `"}`, http.StatusBadRequest, "at most"},
		{"no key", "/v1/mcp/server/gh/user-credential", "", `{"credential": "` + tok + `"}`, http.StatusUnauthorized, ""},
	} {
		status, _, body := rest(t, http.MethodPost, base+tc.path, tc.key, tc.body)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: HTTP %d %s, want %d %q", tc.name, status, bus.Shorten(body, 300), tc.status, tc.says)
		}
	}
	assertNoSecrets(t, g, tok)
}
