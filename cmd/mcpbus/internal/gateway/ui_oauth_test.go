package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/testidp"
)

// oauthBrowser is a browser on loopback: it keeps cookies, follows
// redirects, and reaches the gateway's public URL (oauthResource) at the
// gateway's loopback address, as a reverse proxy in front of it would.
func oauthBrowser(t *testing.T, gatewayURL string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	gw, _ := url.Parse(gatewayURL)
	public, _ := url.Parse(oauthResource)
	return &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Host == public.Host {
			req.URL.Scheme, req.URL.Host = gw.Scheme, gw.Host
		}
		return nil
	}}
}

// uiProviderSignIn opens the UI's "Sign in with <provider>" link and
// signs in at the provider's login form; it returns the answer the
// browser ends on (the gateway's callback) and its body.
func uiProviderSignIn(t *testing.T, b *http.Client, g *testGateway, idp *testidp.IdP, user string) (*http.Response, string) {
	t.Helper()
	resp, err := b.Get(g.URL() + "/ui/oauth/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("id")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Request.URL.String(), idp.Issuer()) || id == "" {
		t.Fatalf("the sign-in link ended at %s (HTTP %d), not the provider's login page", resp.Request.URL.Redacted(), resp.StatusCode)
	}
	resp, err = b.PostForm(idp.Issuer()+"/login", url.Values{"id": {id}, "username": {user}, "password": {user + "-pw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	recordBody(body)
	return resp, string(body)
}

// The admin UI signs a key-less user in with the identity provider: the
// session is that user in their team, as through MCP; a callback reaching
// another browser than the one that started the sign-in (login CSRF) is
// refused, and so is a replayed one.
func TestUISignInWithProvider(t *testing.T) {
	idp := startIdP(t, testidp.Client{ID: "mcpbus-ui", Secret: "ui-client-secret", RedirectURIs: []string{oauthResource + "/ui/oauth/callback"}})
	g, _ := oauthGateway(t, idp, `    ui_sign_in:
      client_id: mcpbus-ui
      client_secret: os.environ/UI_CLIENT_SECRET`, map[string]string{"UI_CLIENT_SECRET": "ui-client-secret"})

	status, _, body := rest(t, http.MethodGet, g.URL()+"/ui/api/sign-in-methods", "", "")
	if status != http.StatusOK || !strings.Contains(body, `"url":"/ui/oauth/login"`) || !strings.Contains(body, `"provider":"127.0.0.1:`) {
		t.Fatalf("sign-in methods: HTTP %d %s", status, body)
	}

	b := oauthBrowser(t, g.URL())
	resp, page := uiProviderSignIn(t, b, g, idp, "alice")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Signed in as alice@example.test") {
		t.Fatalf("callback: HTTP %d %s", resp.StatusCode, page)
	}
	req, _ := http.NewRequest(http.MethodGet, g.URL()+"/ui/api/session", nil)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Caller string `json:"caller"`
		Admin  bool   `json:"admin"`
		Team   string `json:"team_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&s)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || s.Caller != "alice@example.test" || s.Team != "eng" || s.Admin {
		t.Fatalf("the UI session: HTTP %d %+v", resp.StatusCode, s)
	}
	// The session acts as alice: her team's server, not the other.
	resp, err = b.Get(g.URL() + "/v1/mcp/tools")
	if err != nil {
		t.Fatal(err)
	}
	tools, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(tools), "eng-srv") || strings.Contains(string(tools), "ops-srv") {
		t.Fatalf("alice's UI session lists tools: HTTP %d %s", resp.StatusCode, tools)
	}

	// Login CSRF: the victim's browser is handed the attacker's callback.
	attacker := oauthBrowser(t, g.URL())
	var callback string
	attacker.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), oauthResource) {
			callback = g.URL() + strings.TrimPrefix(req.URL.String(), oauthResource) // the proxy's mapping
			return http.ErrUseLastResponse
		}
		return nil
	}
	if resp, _ := uiProviderSignIn(t, attacker, g, idp, "bob"); callback == "" {
		t.Fatalf("bob's sign-in never came back to the gateway (HTTP %d)", resp.StatusCode)
	}
	victim := oauthBrowser(t, g.URL())
	resp, err = victim.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	page2, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(page2), "started in another browser") {
		t.Fatalf("a callback in another browser: HTTP %d %s", resp.StatusCode, page2)
	}
	// The flow is spent: not even the browser that started it can finish it now.
	resp, err = b.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a replayed callback: HTTP %d", resp.StatusCode)
	}
	assertNoSecrets(t, g, "ui-client-secret")
}
