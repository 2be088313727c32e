package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/demo"
	"github.com/mcpbus/mcpbus/cmd/mcpbus/internal/testidp"
	"github.com/mcpbus/mcpbus/internal/oauth"
)

// A per-user OAuth world: a "GitHub" identity provider (a second testidp),
// an MCP server behind it that accepts only its tokens for its own URL and
// records whose token each call carried, a counter of refresh grants in
// front of the provider's token endpoint, and a gateway whose server gh
// signs each user in there.
type userOAuthWorld struct {
	g        *testGateway
	base     string
	idp      *testidp.IdP
	up       *jwtUpstream
	refreshs *grantCounter
	yaml     string
	alice    string
	bob      string
}

const ghClientSecret = "gh-client-SECRET-4d1a"

func startUserOAuthWorld(t *testing.T, accessTTL time.Duration) *userOAuthWorld {
	t.Helper()
	addr := freeAddr(t)
	public := "http://" + addr
	idp := testidp.StartT(t, testidp.Options{
		Users:          []testidp.User{{ID: "alice", Password: "alice-pw-1"}, {ID: "bob", Password: "bob-pw-2"}},
		Clients:        []testidp.Client{{ID: "mcpbus-gateway", Secret: ghClientSecret, RedirectURIs: []string{public + "/oauth/callback"}}},
		AccessTokenTTL: accessTTL,
	})
	up := &jwtUpstream{next: demo.Handler("gh"), subs: map[string]string{}}
	upSrv := httptest.NewServer(up)
	t.Cleanup(upSrv.Close)
	upURL := upSrv.URL + "/mcp"
	v, err := oauth.New([]oauth.Issuer{{Issuer: idp.Issuer(), Resource: upURL, JWKSURL: idp.JWKSURL()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	up.v = v
	counter := &grantCounter{}
	target, _ := url.Parse(idp.Issuer())
	counter.next = httputil.NewSingleHostReverseProxy(target)
	tokSrv := httptest.NewServer(counter)
	t.Cleanup(tokSrv.Close)

	yaml := fmt.Sprintf(`general_settings:
  master_key: %s
  mcp_oauth: {resource: %q}
mcp_servers:
  gh:
    url: %q
    transport: http
    auth_type: oauth2
    oauth2_flow: authorization_code
    authorization_url: %q
    token_url: %q
    oauth2_issuer: %q
    client_id: mcpbus-gateway
    client_secret: os.environ/GH_CLIENT_SECRET
    scopes: [openid, offline_access]
`, master, public, upURL, idp.Issuer()+"/authorize", tokSrv.URL+"/oauth/token", idp.Issuer())
	env := map[string]string{"MCPBUS_SALT_KEY": "useroauth-test-salt-key-0123456789", "GH_CLIENT_SECRET": ghClientSecret}
	g := startGatewayOpts(t, yaml, env, func(o *Options) { o.Listen = addr })
	w := &userOAuthWorld{g: g, base: g.URL(), idp: idp, up: up, refreshs: counter, yaml: yaml}
	perms := map[string]any{"mcp_servers": []string{"gh"}}
	w.alice = generateKey(t, w.base, map[string]any{"key_alias": "alice-key", "user_id": "alice", "object_permission": perms})
	w.bob = generateKey(t, w.base, map[string]any{"key_alias": "bob-key", "user_id": "bob", "object_permission": perms})
	return w
}

// call makes one tools/call of echo on gh as key.
func (w *userOAuthWorld) call(t *testing.T, key, text string) rawResponse {
	t.Helper()
	s := initSession(t, w.base+"/mcp/gh", bearer(key))
	return post(t, w.base+"/mcp/gh", s, rpc("tools/call", 2, `{"name":"echo","arguments":{"text":"`+text+`"}}`))
}

// elicitationURL is the sign-in URL of a -32042 answer (failing the test
// when the answer is another).
func elicitationURL(t *testing.T, r rawResponse) string {
	t.Helper()
	var body struct {
		Error struct {
			Code    int
			Message string
			Data    struct {
				Elicitations []struct {
					Mode          string `json:"mode"`
					ElicitationID string `json:"elicitationId"`
					URL           string `json:"url"`
					Message       string `json:"message"`
				} `json:"elicitations"`
			}
		}
	}
	if err := json.Unmarshal(r.body, &body); err != nil || body.Error.Code != -32042 || len(body.Error.Data.Elicitations) != 1 {
		t.Fatalf("want a URLElicitationRequired error (-32042), got %s", r.body)
	}
	el := body.Error.Data.Elicitations[0]
	if el.Mode != "url" || el.ElicitationID == "" || !strings.Contains(body.Error.Message, el.URL) || !strings.Contains(el.URL, "/oauth/authorize/gh?ticket=") {
		t.Fatalf("elicitation %+v, message %q", el, body.Error.Message)
	}
	return el.URL
}

// browser follows a sign-in link as a browser would: the gateway's
// redirect to the provider, its login form as user, and back to the
// gateway's callback; it returns the last page's status and body.
// tamper, if set, may change the callback URL before it is followed.
func browser(t *testing.T, link, user, password string, tamper func(*url.URL)) (int, string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, target string, form url.Values) *http.Response {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequest(method, target, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		return resp
	}
	next := link
	for range 8 {
		u, _ := url.Parse(next)
		if u.Path == "/oauth/callback" && tamper != nil {
			tamper(u)
			next = u.String()
		}
		resp := do(http.MethodGet, next, nil)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		recordBody(page)
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			if form := confirmForm(string(page)); form != nil && resp.StatusCode == http.StatusOK {
				// The gateway asks to confirm the account the link is for.
				resp = do(http.MethodPost, u.Scheme+"://"+u.Host+u.Path, form)
				page, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
				loc, err := resp.Location()
				if err != nil {
					return resp.StatusCode, string(page)
				}
				next = loc.String()
				continue
			}
			if strings.HasSuffix(u.Path, "/login") && resp.StatusCode == http.StatusOK {
				resp = do(http.MethodPost, u.Scheme+"://"+u.Host+"/login",
					url.Values{"id": {u.Query().Get("id")}, "username": {user}, "password": {password}})
				resp.Body.Close()
				loc, err := resp.Location()
				if err != nil {
					t.Fatalf("login as %s: HTTP %d", user, resp.StatusCode)
				}
				next = loc.String()
				continue
			}
			return resp.StatusCode, string(page)
		}
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("a redirect without Location from %s", u.Path)
		}
		next = loc.String()
	}
	t.Fatalf("the sign-in did not end in a page")
	return 0, ""
}

// confirmForm reads the gateway's confirmation page's hidden fields, or
// nil when page is not one.
func confirmForm(page string) url.Values {
	field := func(name string) string {
		i := strings.Index(page, `name="`+name+`" value="`)
		if i < 0 {
			return ""
		}
		v := page[i+len(`name="`+name+`" value="`):]
		return html.UnescapeString(v[:strings.IndexByte(v, '"')])
	}
	if field("nonce") == "" {
		return nil
	}
	return url.Values{"ticket": {field("ticket")}, "nonce": {field("nonce")}}
}

// The whole per-user flow: a caller without a token is asked to sign in
// (-32042, a one-time link); the link, followed in a browser, ends at the
// gateway's "connected" page; then each user's calls reach the upstream
// with their own token (its sub is theirs), never the other's; the bucket
// holds the tokens sealed; no token, code or ticket is logged. Revoking
// (DELETE user-credential) makes the next call ask to sign in again.
func TestUserOAuthSignInPerUser(t *testing.T) {
	w := startUserOAuthWorld(t, 0)
	r := w.call(t, w.alice, "a0")
	link := elicitationURL(t, r)
	if w.up.subOf("a0") != "" {
		t.Fatalf("a call without a token reached the upstream")
	}
	status, page := browser(t, link, "alice", "alice-pw-1", nil)
	if status != http.StatusOK || !strings.Contains(page, "Connected gh") {
		t.Fatalf("alice's sign-in ends with HTTP %d: %s", status, page)
	}
	// The ticket worked once.
	if status, page := browser(t, link, "alice", "alice-pw-1", nil); status != http.StatusBadRequest || !strings.Contains(page, "used already") {
		t.Fatalf("a replayed ticket: HTTP %d: %s", status, page)
	}
	bobLink := elicitationURL(t, w.call(t, w.bob, "b0"))
	if status, page := browser(t, bobLink, "bob", "bob-pw-2", nil); status != http.StatusOK {
		t.Fatalf("bob's sign-in ends with HTTP %d: %s", status, page)
	}
	for _, c := range []struct{ key, user, text string }{{w.alice, "alice", "a1"}, {w.bob, "bob", "b1"}, {w.alice, "alice", "a2"}} {
		r := w.call(t, c.key, c.text)
		if r.rpcErr.Code != 0 || !strings.Contains(string(r.result), c.text) {
			t.Fatalf("%s's call after signing in: %s", c.user, r.body)
		}
		if got := w.up.subOf(c.text); got != c.user {
			t.Fatalf("%s's call reached the upstream with the token of %q", c.user, got)
		}
	}

	// At rest: sealed.
	kv, err := jetstreamKV(t, w.g)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(context.Background(), bus.UserCredentialKey("user:alice", "gh"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(entry.Value()), bus.SealedPrefix) || !strings.Contains(string(entry.Value()), `"kind":"oauth2"`) {
		t.Fatalf("the stored tokens are not sealed: %.80s", entry.Value())
	}
	for _, tok := range w.up.tokens() {
		if strings.Contains(string(entry.Value()), tok) {
			t.Fatalf("a token is stored in plain text")
		}
	}
	// The API describes it, never its token.
	status, _, body := rest(t, http.MethodGet, w.base+"/v1/mcp/server/gh/user-credential", w.alice, "")
	if status != http.StatusOK || !strings.Contains(body, `"kind":"oauth2"`) || !strings.Contains(body, `"has_refresh_token":true`) {
		t.Fatalf("alice's credential described: HTTP %d %s", status, body)
	}

	// Alice revokes: her next call asks her to sign in again; bob's works.
	if status, _, body := rest(t, http.MethodDelete, w.base+"/v1/mcp/server/gh/user-credential", w.alice, ""); status != http.StatusOK {
		t.Fatalf("alice revokes: HTTP %d %s", status, body)
	}
	asked := false
	for range 20 {
		if r := w.call(t, w.alice, "a3"); r.rpcErr.Code == -32042 {
			elicitationURL(t, r)
			asked = true
			break
		}
	}
	if !asked {
		t.Fatalf("alice's calls still succeed after she revoked her sign-in")
	}
	if r := w.call(t, w.bob, "b2"); r.rpcErr.Code != 0 || w.up.subOf("b2") != "bob" {
		t.Fatalf("bob's call after alice revoked: %s", r.body)
	}
	assertNoSecrets(t, w.g, append(w.up.tokens(), ghClientSecret)...)
	// The ticket is the caller's to open (it is in the answer): never logged.
	if ticket := link[strings.Index(link, "ticket=")+len("ticket="):]; strings.Contains(w.g.logs.String(), ticket) {
		t.Errorf("a sign-in ticket appears in the logs")
	}
}

// jwtUpstream is the demo MCP server behind bearer JWTs of one provider
// for its own URL; it records the sub of each tools/call by echoed text.
type jwtUpstream struct {
	next http.Handler
	v    *oauth.Validator
	mu   sync.Mutex
	subs map[string]string
	seen []string
}

func (j *jwtUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	claims, e := j.v.Validate(r.Context(), tok)
	if !ok || e != nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid token", http.StatusUnauthorized)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var m struct {
		Method string
		Params struct{ Arguments struct{ Text string } }
	}
	_ = json.Unmarshal(body, &m)
	j.mu.Lock()
	if m.Method == "tools/call" {
		j.subs[m.Params.Arguments.Text] = claims.Subject
	}
	j.seen = append(j.seen, tok)
	j.mu.Unlock()
	j.next.ServeHTTP(w, r)
}

func (j *jwtUpstream) subOf(text string) string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.subs[text]
}

func (j *jwtUpstream) tokens() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.seen...)
}

// grantCounter forwards to the provider and counts refresh_token grants.
type grantCounter struct {
	next     http.Handler
	mu       sync.Mutex
	refreshs int
}

func (c *grantCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if form, err := url.ParseQuery(string(body)); err == nil && form.Get("grant_type") == "refresh_token" {
		c.mu.Lock()
		c.refreshs++
		c.mu.Unlock()
	}
	c.next.ServeHTTP(w, r)
}

func (c *grantCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refreshs
}

// A sign-in link links the provider account of whoever opens it to the
// user it was made for, so it must be opened by that user: a browser
// signed in to the gateway as someone else is refused; a browser signed in
// as no one is first shown the account to confirm, and a confirmation
// posted from anywhere but that page is refused. None of these uses the
// link up: its user still signs in with it.
func TestUserOAuthLinkIsItsUsersOwn(t *testing.T) {
	w := startUserOAuthWorld(t, 0)
	link := elicitationURL(t, w.call(t, w.alice, "a0"))
	path := strings.TrimPrefix(link, w.base)

	// bob, signed in to the UI, opens alice's link.
	bob := uiSignIn(t, w.base, w.bob)
	status, page := bob.do(http.MethodGet, path, "")
	if status != http.StatusForbidden || !strings.Contains(page, "made for another account") {
		t.Fatalf("alice's link in bob's browser: HTTP %d %s", status, page)
	}

	// A browser signed in as no one is asked to confirm the account.
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := confirmForm(string(body))
	if resp.StatusCode != http.StatusOK || form == nil || !strings.Contains(string(body), "<strong>user alice</strong>") {
		t.Fatalf("the link in a fresh browser: HTTP %d %s", resp.StatusCode, body)
	}
	// The form posted from elsewhere (no cookie of the page) is refused.
	resp, err = http.PostForm(w.base+"/oauth/authorize/gh", form)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "did not come from the page") {
		t.Fatalf("a confirmation without the page's cookie: HTTP %d %s", resp.StatusCode, body)
	}

	// alice herself, confirming, signs in with the same link.
	if status, page := browser(t, link, "alice", "alice-pw-1", nil); status != http.StatusOK || !strings.Contains(page, "Connected gh") {
		t.Fatalf("alice's own sign-in: HTTP %d %s", status, page)
	}
	if r := w.call(t, w.alice, "a1"); r.rpcErr.Code != 0 || w.up.subOf("a1") != "alice" {
		t.Fatalf("alice's call after signing in: %s", r.body)
	}
}
