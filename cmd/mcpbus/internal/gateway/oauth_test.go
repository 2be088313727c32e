package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/testidp"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// The gateway's resource URL in these tests: an identifier tokens are
// asked for (RFC 8707), not an address anything dials.
const oauthResource = "https://mcp.example.test"

const loopbackRedirect = "http://127.0.0.1:8976/callback"

// startIdP runs a real OpenID provider (zitadel's op, testidp) with alice
// in eng, bob in ops and carol in a group no team has.
func startIdP(t *testing.T, clients ...testidp.Client) *testidp.IdP {
	t.Helper()
	return testidp.StartT(t, testidp.Options{
		Users: []testidp.User{
			{ID: "alice", Email: "alice@example.test", Password: "alice-pw", Groups: []string{"eng"}},
			{ID: "bob", Email: "bob@example.test", Password: "bob-pw", Groups: []string{"ops"}},
			{ID: "carol", Email: "carol@example.test", Password: "carol-pw", Groups: []string{"sales"}},
		},
		Clients: append([]testidp.Client{{ID: "mcp-client", RedirectURIs: []string{"http://127.0.0.1/callback"}}}, clients...),
	})
}

// signIn runs the authorization-code flow with PKCE for user, asking for a
// token for resource.
func signIn(t *testing.T, idp *testidp.IdP, clientID, user, resource string) *testidp.Tokens {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := idp.AuthorizationCodeFlow(ctx, clientID, loopbackRedirect, resource, user, user+"-pw", "openid", "email")
	if err != nil {
		t.Fatalf("%s signs in: %v", user, err)
	}
	registerSecret(tok.AccessToken)
	if tok.RefreshToken != "" {
		registerSecret(tok.RefreshToken)
	}
	return tok
}

// oauthGateway serves two upstreams behind OAuth from idp, with teams eng
// and ops each allowed one of them.
func oauthGateway(t *testing.T, idp *testidp.IdP, extra string, env map[string]string) (*testGateway, *recorder) {
	t.Helper()
	engURL, engRec := upstream(t, "eng-srv")
	opsURL, _ := upstream(t, "ops-srv")
	g := startGateway(t, fmt.Sprintf(`general_settings:
  master_key: %s
  enable_jwt_auth: true
  litellm_jwtauth:
    team_ids_jwt_field: groups
    issuers:
      - issuer: %s
  mcp_oauth:
    resource: %s
%s
mcp_servers:
  eng-srv: {url: %q}
  ops-srv: {url: %q}
`, master, idp.Issuer(), oauthResource, extra, engURL, opsURL), env)
	for team, srv := range map[string]string{"eng": "eng-srv", "ops": "ops-srv"} {
		if status, out := admin(t, g.URL(), http.MethodPost, "/team/new", map[string]any{"team_id": team,
			"object_permission": map[string]any{"mcp_servers": []string{srv}}}); status != http.StatusOK {
			t.Fatalf("/team/new %s: HTTP %d %v", team, status, out)
		}
	}
	return g, engRec
}

func toolNamesOf(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// Key-less users sign in with a real provider (authorization code + PKCE,
// the token asked for this gateway), and each sees and calls only its
// team's server's tools; a user in no team is refused with the reason;
// tokens for another resource, expired, or forged are each refused with
// the reason in WWW-Authenticate; no token reaches an upstream or a log.
func TestOAuthUsersGetTheirTeamsTools(t *testing.T) {
	idp := startIdP(t)
	g, engRec := oauthGateway(t, idp, "", nil)

	alice := signIn(t, idp, "mcp-client", "alice", oauthResource+"/mcp")
	cs, err := connect(t, g.URL()+"/mcp", bearer(alice.AccessToken))
	if err != nil {
		t.Fatalf("alice connects: %v", err)
	}
	names := toolNamesOf(t, cs)
	if len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return !strings.HasPrefix(n, "eng-srv") }) {
		t.Fatalf("alice (team eng) sees %v, want eng-srv's tools only", names)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "eng-srv__echo", Arguments: map[string]any{"text": "hi"}})
	if err != nil || res.IsError {
		t.Fatalf("alice calls eng-srv__echo: %v %+v", err, res)
	}
	for _, h := range engRec.seen() {
		for k, v := range h {
			if strings.Contains(strings.Join(v, " "), alice.AccessToken) {
				t.Fatalf("alice's token reached the upstream in %s", k)
			}
		}
	}

	bob := signIn(t, idp, "mcp-client", "bob", oauthResource+"/mcp/ops-srv")
	cs, err = connect(t, g.URL()+"/mcp", bearer(bob.AccessToken))
	if err != nil {
		t.Fatalf("bob connects: %v", err)
	}
	if names := toolNamesOf(t, cs); len(names) == 0 || slices.ContainsFunc(names, func(n string) bool { return !strings.HasPrefix(n, "ops-srv") }) {
		t.Fatalf("bob (team ops) sees %v, want ops-srv's tools only", names)
	}
	// bob's token does not open eng-srv, and the refusal names him as a
	// user, not a key.
	if status, _, body := rest(t, http.MethodPost, g.URL()+"/mcp/eng-srv", bob.AccessToken, initBody); status != http.StatusOK ||
		!strings.Contains(body, "user 'bob@example.test' may not use MCP server 'eng-srv'") {
		t.Fatalf("bob at eng-srv: HTTP %d %s", status, body)
	}

	carol := signIn(t, idp, "mcp-client", "carol", oauthResource)
	status, _, body := rest(t, http.MethodPost, g.URL()+"/mcp", carol.AccessToken, initBody)
	if status != http.StatusForbidden || !strings.Contains(body, "OAuth user 'carol' is in no team of this gateway (the token names 'sales')") {
		t.Fatalf("carol: HTTP %d %s", status, body)
	}

	other := signIn(t, idp, "mcp-client", "alice", "https://other.example.test/mcp")
	expired := idp.MintAccessToken("alice", oauthResource, -5*time.Minute, map[string]any{"groups": []string{"eng"}})
	forged := alice.AccessToken[:strings.LastIndexByte(alice.AccessToken, '.')+1] + strings.Repeat("A", 342)
	registerSecret(expired, forged)
	for name, tc := range map[string]struct{ tok, reason string }{
		"another resource": {other.AccessToken, "not for this resource"},
		"expired":          {expired, "expired at"},
		"forged":           {forged, "signature does not verify"},
		"an ID token":      {alice.IDToken, "not for this resource"},
	} {
		req, _ := http.NewRequest(http.MethodPost, g.URL()+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
		req.Header.Set("Authorization", "Bearer "+tc.tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		recordBody(b)
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, tc.reason) ||
			!strings.Contains(ch, `resource_metadata="`+oauthResource+`/.well-known/oauth-protected-resource/mcp"`) {
			t.Errorf("%s: HTTP %d WWW-Authenticate %q", name, resp.StatusCode, ch)
		}
	}
	assertNoSecrets(t, g, alice.AccessToken, bob.AccessToken, carol.AccessToken, other.AccessToken, expired)
}

// Opaque tokens are checked with the provider's introspection endpoint
// (RFC 7662) as the gateway's own confidential client; a revoked one is
// refused as no longer active, and keys keep working beside them.
func TestOAuthOpaqueTokensAreIntrospected(t *testing.T) {
	idp := startIdP(t,
		testidp.Client{ID: "opaque-client", RedirectURIs: []string{"http://127.0.0.1/callback"}, OpaqueTokens: true},
		testidp.Client{ID: "mcpbus-gw", Secret: "gw-introspection-secret", GrantTypes: []string{"client_credentials"}})
	md := discovery(t, idp.Issuer())
	g, _ := oauthGateway(t, idp, fmt.Sprintf(`    introspection:
      url: %s
      client_id: mcpbus-gw
      client_secret: os.environ/INTROSPECT_SECRET`, md["introspection_endpoint"]), map[string]string{"INTROSPECT_SECRET": "gw-introspection-secret"})

	alice := signIn(t, idp, "opaque-client", "alice", oauthResource)
	if strings.Count(alice.AccessToken, ".") == 2 {
		t.Fatal("the opaque client got a JWT: this test would not introspect")
	}
	cs, err := connect(t, g.URL()+"/mcp", bearer(alice.AccessToken))
	if err != nil {
		t.Fatalf("alice with an opaque token: %v", err)
	}
	if names := toolNamesOf(t, cs); len(names) == 0 || !strings.HasPrefix(names[0], "eng-srv") {
		t.Fatalf("alice sees %v", names)
	}

	revoked := signIn(t, idp, "opaque-client", "alice", oauthResource)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := idp.Revoke(ctx, "opaque-client", revoked.AccessToken); err != nil {
		t.Fatal(err)
	}
	status, hdr, body := rest(t, http.MethodGet, g.URL()+"/v1/mcp/tools", revoked.AccessToken, "")
	if status != http.StatusUnauthorized || !strings.Contains(body, "not active") || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("a revoked opaque token: HTTP %d %s %q", status, body, hdr.Get("WWW-Authenticate"))
	}
	// A gateway key is still a key, never sent to the provider.
	key := generateKey(t, g.URL(), map[string]any{"team_id": "eng"})
	if status, _, body := rest(t, http.MethodGet, g.URL()+"/v1/mcp/tools", key, ""); status != http.StatusOK {
		t.Fatalf("a key beside OAuth: HTTP %d %s", status, body)
	}
	assertNoSecrets(t, g, alice.AccessToken, revoked.AccessToken, "gw-introspection-secret")
}

// discovery reads the provider's OpenID metadata.
func discovery(t *testing.T, issuer string) map[string]any {
	t.Helper()
	resp, err := http.Get(issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&md); err != nil {
		t.Fatal(err)
	}
	return md
}

// With the registration shim, the gateway publishes the provider's
// metadata as its own authorization server with its registration
// endpoint, gives a registering client the provider's public client, and a
// user signing in with that client gets in.
func TestOAuthRegistrationShim(t *testing.T) {
	idp := startIdP(t)
	g, _ := oauthGateway(t, idp, `    client_registration:
      client_id: mcp-client`, nil)
	resp, err := http.Get(g.URL() + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	var prm struct {
		AuthorizationServers []string `json:"authorization_servers"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	if len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != oauthResource {
		t.Fatalf("resource metadata names %v, want the gateway", prm.AuthorizationServers)
	}
	resp, err = http.Get(g.URL() + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	var as map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&as)
	resp.Body.Close()
	idpMD := discovery(t, idp.Issuer())
	if as["authorization_endpoint"] != idpMD["authorization_endpoint"] || as["token_endpoint"] != idpMD["token_endpoint"] ||
		as["registration_endpoint"] != oauthResource+"/oauth/register" || as["issuer"] != oauthResource {
		t.Fatalf("authorization server metadata: %v", as)
	}
	status, _, body := rest(t, http.MethodPost, g.URL()+"/oauth/register", "", `{"client_name":"Claude","redirect_uris":["`+loopbackRedirect+`"],"token_endpoint_auth_method":"none"}`)
	var reg struct {
		ClientID string `json:"client_id"`
	}
	_ = json.Unmarshal([]byte(body), &reg)
	if status != http.StatusCreated || reg.ClientID != "mcp-client" {
		t.Fatalf("register: HTTP %d %s", status, body)
	}
	alice := signIn(t, idp, reg.ClientID, "alice", oauthResource+"/mcp")
	if status, _, body := rest(t, http.MethodGet, g.URL()+"/v1/mcp/tools", alice.AccessToken, ""); status != http.StatusOK || !strings.Contains(body, "eng-srv") {
		t.Fatalf("alice through the shim's client: HTTP %d %s", status, body)
	}
}
