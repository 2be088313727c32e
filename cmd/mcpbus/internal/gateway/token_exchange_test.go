package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/testidp"
	"github.com/mcpbus/mcpbus/internal/oauth"
)

const exchangeSecret = "exchange-client-SECRET-9c2e"

// Token exchange (RFC 8693, on behalf of): a caller signed in with the
// identity provider calls a token-exchange server, and the upstream sees a
// token the provider issued for it, for that caller (its sub is theirs),
// never the caller's own token; one exchange per user, not per call; a
// caller with a gateway key is told why there is no token for them.
func TestTokenExchangeOnBehalfOfTheCaller(t *testing.T) {
	idp := startIdP(t, testidp.Client{ID: "mcpbus-exchange", Secret: exchangeSecret,
		GrantTypes: []string{"urn:ietf:params:oauth:grant-type:token-exchange"}})
	up := &jwtUpstream{next: demo.Handler("jira"), subs: map[string]string{}}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	upURL := upSrv.URL + "/mcp"
	v, err := oauth.New([]oauth.Issuer{{Issuer: idp.Issuer(), Resource: upURL, JWKSURL: idp.JWKSURL()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	up.v = v
	g := startGateway(t, fmt.Sprintf(`general_settings:
  master_key: %s
  enable_jwt_auth: true
  litellm_jwtauth: {team_ids_jwt_field: groups, issuers: [{issuer: %s}]}
  mcp_oauth: {resource: %s}
mcp_servers:
  jira:
    url: %q
    transport: http
    auth_type: oauth2
    oauth2_flow: token_exchange
    oauth2_issuer: %s
    client_id: mcpbus-exchange
    client_secret: os.environ/EXCHANGE_SECRET
`, master, idp.Issuer(), oauthResource, upURL, idp.Issuer()),
		map[string]string{"EXCHANGE_SECRET": exchangeSecret, "MCPBUS_SALT_KEY": "token-exchange-test-salt-0123456789"})
	if status, out := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_id": "eng",
		"object_permission": map[string]any{"mcp_servers": []string{"jira"}}}); status != http.StatusOK {
		t.Fatalf("/team/new: HTTP %d %v", status, out)
	}

	call := func(token, text string) rawResponse {
		t.Helper()
		s := initSession(t, g.URL()+"/mcp/jira", bearer(token))
		return post(t, g.URL()+"/mcp/jira", s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"`+text+`"}}`))
	}
	alice := signIn(t, idp, "mcp-client", "alice", oauthResource+"/mcp/jira")
	for _, text := range []string{"a1", "a2", "a3"} {
		if r := call(alice.AccessToken, text); r.rpcErr.Code != 0 || up.subOf(text) != "alice" {
			t.Fatalf("alice's call %s: sub %q, %s", text, up.subOf(text), r.body)
		}
	}
	if n := idp.Exchanges(); n != 1 {
		t.Fatalf("%d exchanges for three calls of one user, want 1", n)
	}
	// bob is in ops: ops may use jira too.
	if status, out := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_id": "ops",
		"object_permission": map[string]any{"mcp_servers": []string{"jira"}}}); status != http.StatusOK {
		t.Fatalf("/team/new ops: HTTP %d %v", status, out)
	}
	bob := signIn(t, idp, "mcp-client", "bob", oauthResource+"/mcp/jira")
	if r := call(bob.AccessToken, "b1"); r.rpcErr.Code != 0 || up.subOf("b1") != "bob" {
		t.Fatalf("bob's call: sub %q, %s", up.subOf("b1"), r.body)
	}
	for _, seen := range up.tokens() {
		if seen == alice.AccessToken || seen == bob.AccessToken {
			t.Fatal("a caller's own token reached the upstream")
		}
	}

	key := generateKey(t, g.URL(), map[string]any{"team_id": "eng", "user_id": "carol"})
	r := call(key, "k1")
	if r.rpcErr.Code == 0 || !strings.Contains(r.rpcErr.Message, "token exchanged for your own OAuth access token") || up.subOf("k1") != "" {
		t.Fatalf("a key's call: %s", r.body)
	}
	assertNoSecrets(t, g, append(up.tokens(), alice.AccessToken, bob.AccessToken, exchangeSecret)...)
}
