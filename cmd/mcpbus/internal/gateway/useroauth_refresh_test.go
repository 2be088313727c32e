package gateway

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/toolworkers"
)

// A token past its expiry is refreshed once across two worker replicas:
// concurrent calls of one user through both reach the provider's token
// endpoint with one refresh_token grant between them, and all succeed with
// the renewed token.
func TestUserOAuthRefreshOnceAcrossReplicas(t *testing.T) {
	w := startUserOAuthWorld(t, 10*time.Minute)
	if status, page := browser(t, elicitationURL(t, w.call(t, w.alice, "a0")), "alice", "alice-pw-1", nil); status != http.StatusOK {
		t.Fatalf("sign-in: HTTP %d %s", status, page)
	}
	// A second replica of gh's worker, on its own connection as the
	// workers' role.
	env := map[string]string{"GH_CLIENT_SECRET": ghClientSecret}
	cfg, err := config.Parse("config.yaml", []byte(w.yaml), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	key, err := bus.NewSecretKey("useroauth-test-salt-key-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	wc := roleConn(t, w.g.Gateway, bus.RoleWorkers)
	js, err := jetstreamFor(wc)
	if err != nil {
		t.Fatal(err)
	}
	second, err := toolworkers.Start(wc, cfg.Servers[0], toolworkers.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Env: func(k string) (string, bool) { v, ok := env[k]; return v, ok }, JetStream: js, Secrets: key,
		PublicURL: config.PublicURL(nil, cfg.OAuth)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(second.Stop)
	wc.Flush()

	const n = 16
	sessions := make([]http.Header, n)
	for i := range sessions {
		sessions[i] = initSession(t, w.base+"/mcp/gh", bearer(w.alice))
	}
	// Alice's record, now past its expiry (as an hour later).
	kv, err := jetstreamKV(t, w.g)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	k := bus.UserCredentialKey("user:alice", "gh")
	entry, err := kv.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	c, err := bus.DecodeUserCredential(k, entry.Value())
	if err == nil {
		c, err = key.OpenUserCredential(c)
	}
	if err != nil || c.RefreshToken == "" {
		t.Fatalf("alice's record: %v (refresh token %t)", err, c.RefreshToken != "")
	}
	old := c.AccessToken
	past := time.Now().Add(-time.Minute).UTC()
	c.ExpiresAt = &past
	sealed, _ := key.SealUserCredential(c)
	value, _ := json.Marshal(sealed)
	if _, err := kv.Put(ctx, k, value); err != nil {
		t.Fatal(err)
	}
	before := w.refreshs.count()

	var wg sync.WaitGroup
	answers := make([]rawResponse, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = post(t, w.base+"/mcp/gh", sessions[i], rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"r`+string(rune('a'+i))+`"}}`))
		}()
	}
	wg.Wait()
	for i, r := range answers {
		if r.rpcErr.Code != 0 || w.up.subOf("r"+string(rune('a'+i))) != "alice" {
			t.Fatalf("call %d after the expiry: %s", i, r.body)
		}
	}
	if got := w.refreshs.count() - before; got != 1 {
		t.Fatalf("%d refresh_token grants for one expiry across two replicas, want 1", got)
	}
	entry, _ = kv.Get(ctx, k)
	c, _ = bus.DecodeUserCredential(k, entry.Value())
	if c, err = key.OpenUserCredential(c); err != nil || c.AccessToken == old || c.Expired(time.Now()) || c.RefreshingSince != nil {
		t.Fatalf("the record after the refresh: renewed %t, expired %t, claimed %t (%v)", c.AccessToken != old, c.Expired(time.Now()), c.RefreshingSince != nil, err)
	}
	assertNoSecrets(t, w.g, append(w.up.tokens(), ghClientSecret, c.RefreshToken)...)
}

// A refresh the provider refuses (the refresh token revoked) drops the
// record and asks the user to sign in again.
func TestUserOAuthRefusedRefreshAsksToSignInAgain(t *testing.T) {
	w := startUserOAuthWorld(t, 10*time.Minute)
	if status, page := browser(t, elicitationURL(t, w.call(t, w.alice, "a0")), "alice", "alice-pw-1", nil); status != http.StatusOK {
		t.Fatalf("sign-in: HTTP %d %s", status, page)
	}
	kv, err := jetstreamKV(t, w.g)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := bus.NewSecretKey("useroauth-test-salt-key-0123456789")
	ctx := context.Background()
	k := bus.UserCredentialKey("user:alice", "gh")
	entry, err := kv.Get(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := bus.DecodeUserCredential(k, entry.Value())
	if c, err = key.OpenUserCredential(c); err != nil {
		t.Fatal(err)
	}
	c.RefreshToken = "revoked-refresh-token-" + strings.Repeat("x", 20) // unknown to the provider
	past := time.Now().Add(-time.Minute).UTC()
	c.ExpiresAt = &past
	sealed, _ := key.SealUserCredential(c)
	value, _ := json.Marshal(sealed)
	if _, err := kv.Put(ctx, k, value); err != nil {
		t.Fatal(err)
	}
	elicitationURL(t, w.call(t, w.alice, "a1"))
	if _, err := kv.Get(ctx, k); err == nil {
		t.Fatalf("the refused sign-in is still stored")
	}
}

// The callback refuses what is not the answer to a sign-in in progress,
// each with a page naming why (HTTP 400): a malformed state, an unknown
// one, and an answer from another issuer (RFC 9207), which also uses the
// sign-in up.
func TestUserOAuthCallbackRefusals(t *testing.T) {
	w := startUserOAuthWorld(t, 0)
	get := func(target string) (int, string) {
		t.Helper()
		resp, err := http.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(resp.Body)
		recordBody(page)
		return resp.StatusCode, string(page)
	}
	for name, c := range map[string]struct{ query, want string }{
		"no state":      {"code=abc", "state: missing or malformed"},
		"unknown state": {"state=" + bus.FlowState("gh", bus.NewFlowSecret()) + "&code=abc", "matches no sign-in"},
		"no server":     {"state=" + bus.FlowState("nosuch", bus.NewFlowSecret()) + "&code=abc", "does not sign users in"},
	} {
		status, page := get(w.base + "/oauth/callback?" + c.query)
		if status/100 != 4 || !strings.Contains(page, c.want) || !strings.Contains(page, "Sign-in failed") {
			t.Errorf("%s: HTTP %d %s", name, status, page)
		}
	}
	if status, page := get(w.base + "/oauth/authorize/gh?ticket=" + bus.NewFlowSecret()); status != http.StatusBadRequest || !strings.Contains(page, "used already or has expired") {
		t.Errorf("an unknown ticket: HTTP %d %s", status, page)
	}
	link := elicitationURL(t, w.call(t, w.alice, "a0"))
	var state string
	status, page := browser(t, link, "alice", "alice-pw-1", func(u *url.URL) {
		q := u.Query()
		state = q.Get("state")
		q.Set("iss", "http://127.0.0.1:1/evil")
		u.RawQuery = q.Encode()
	})
	if status != http.StatusBadRequest || !strings.Contains(page, "RFC 9207") {
		t.Fatalf("an answer from another issuer: HTTP %d %s", status, page)
	}
	if status, page := get(w.base + "/oauth/callback?state=" + url.QueryEscape(state) + "&code=abc"); status != http.StatusBadRequest || !strings.Contains(page, "matches no sign-in") {
		t.Fatalf("the refused sign-in's state again: HTTP %d %s", status, page)
	}
	if r := w.call(t, w.alice, "a1"); r.rpcErr.Code != -32042 {
		t.Fatalf("alice is signed in after a refused answer: %s", r.body)
	}
}
