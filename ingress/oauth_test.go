package ingress

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/mcpbus/mcpbus/internal/oauth"
)

const (
	testResource = "https://mcp.example.test"
	testIssuerID = "https://idp.example.test"
)

// testIssuer serves a key set on loopback and signs tokens with it.
type testIssuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &testIssuer{key: k}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.PublicKey, KeyID: "k1", Use: "sig"}}})
	}))
	t.Cleanup(is.srv.Close)
	return is
}

func (is *testIssuer) sign(t *testing.T, key any, alg jose.SignatureAlgorithm, over map[string]any) string {
	t.Helper()
	c := map[string]any{"iss": testIssuerID, "aud": testResource + "/mcp", "sub": "alice", "email": "alice@example.test",
		"groups": []string{"t1"}, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range over {
		c[k] = v
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: key, KeyID: "k1"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(c).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (is *testIssuer) options(t *testing.T) *OAuthOptions {
	t.Helper()
	v, err := oauth.New([]oauth.Issuer{{Issuer: testIssuerID, Resource: testResource, JWKSURL: is.srv.URL,
		Claims: oauth.ClaimFields{TeamIDs: "groups"}}}, is.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return &OAuthOptions{Validator: v, Resource: testResource, AuthorizationServers: []string{testIssuerID}, Scopes: []string{"mcp"}}
}

// The gateway as an OAuth protected resource: metadata for itself and for
// each MCP path, a challenge naming it on every 401, each bad token refused
// with its reason in WWW-Authenticate and the body, a good one admitted as
// its user, and no token in the log or in what reaches the router.
func TestOAuthProtectedResource(t *testing.T) {
	is := newTestIssuer(t)
	var logs syncBuffer
	h := newHarness(t, Options{OAuth: is.options(t), Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}, nil)

	for path, want := range map[string]string{
		"/.well-known/oauth-protected-resource":            testResource,
		"/.well-known/oauth-protected-resource/mcp":        testResource + "/mcp",
		"/.well-known/oauth-protected-resource/mcp/github": testResource + "/mcp/github",
		"/.well-known/oauth-protected-resource/github/mcp": testResource + "/github/mcp",
	} {
		resp := do(t, http.MethodGet, h.url+path, nil, "")
		var doc struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
			Scopes               []string `json:"scopes_supported"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || doc.Resource != want || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != testIssuerID ||
			len(doc.Scopes) != 1 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("GET %s: HTTP %d %+v", path, resp.StatusCode, doc)
		}
	}
	if resp := do(t, http.MethodGet, h.url+"/.well-known/oauth-protected-resource/key/generate", nil, ""); resp.StatusCode != http.StatusNotFound {
		t.Errorf("metadata for a non-MCP path: HTTP %d", resp.StatusCode)
	}

	// No credential: where to sign in, and no error code (RFC 6750 §3.1).
	resp, _ := rpcPost(t, h.url+"/mcp/github", nil, testInit)
	want := `Bearer resource_metadata="` + testResource + `/.well-known/oauth-protected-resource/mcp/github", scope="mcp"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("no credential: HTTP %d, WWW-Authenticate %q, want %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), want)
	}

	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	hmacKey := []byte("0123456789abcdef0123456789abcdef")
	noneTok := func() string {
		hdr := `{"alg":"none","kid":"k1"}`
		body, _ := json.Marshal(map[string]any{"iss": testIssuerID, "aud": testResource, "sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(hdr)) + "." + enc(body) + "."
	}()
	bad := map[string]struct{ tok, reason string }{
		"wrong audience":  {is.sign(t, is.key, jose.RS256, map[string]any{"aud": "https://other.example.test/mcp"}), "not for this resource"},
		"wrong issuer":    {is.sign(t, is.key, jose.RS256, map[string]any{"iss": "https://evil.example.test"}), "is not trusted"},
		"expired":         {is.sign(t, is.key, jose.RS256, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), "expired at"},
		"bad signature":   {is.sign(t, other, jose.RS256, nil), "signature does not verify"},
		"algorithm none":  {noneTok, "algorithm"},
		"algorithm HS256": {is.sign(t, hmacKey, jose.HS256, nil), "algorithm"},
	}
	var tokens []string
	for name, b := range bad {
		tokens = append(tokens, b.tok)
		resp, body := rpcPost(t, h.url+"/mcp", http.Header{"Authorization": {"Bearer " + b.tok}}, testInit)
		ch := resp.Header.Get("WWW-Authenticate")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, b.reason) ||
			!strings.Contains(ch, `resource_metadata="`+testResource+`/.well-known/oauth-protected-resource/mcp"`) || !strings.Contains(body, b.reason) {
			t.Errorf("%s: HTTP %d, WWW-Authenticate %q, body %s; want 401 naming %q", name, resp.StatusCode, ch, body, b.reason)
		}
		if strings.Contains(body, b.tok) || strings.Contains(ch, b.tok) {
			t.Errorf("%s: the answer quotes the token", name)
		}
	}

	// A good token: its user, through the one session it opens.
	good := is.sign(t, is.key, jose.RS256, nil)
	tokens = append(tokens, good)
	hdr := initialize(t, h.url+"/mcp", http.Header{"Authorization": {"Bearer " + good}})
	if resp, body := rpcPost(t, h.url+"/mcp", hdr, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/list with a good token: HTTP %d %s", resp.StatusCode, body)
	}
	inits := h.received("initialize")
	if len(inits) != 1 {
		t.Fatalf("%d initialize reached the router", len(inits))
	}
	if c := inits[0].env.Caller; c.User != "alice" || c.Team != "t1" || c.Alias != "alice@example.test" {
		t.Fatalf("the router saw caller %+v", c)
	}
	for _, rq := range h.seen {
		for k, v := range rq.env.Header() {
			if strings.Contains(strings.Join(v, ","), good) {
				t.Fatalf("the token travels on the bus in %s", k)
			}
		}
	}
	for _, tok := range tokens {
		// The token, or its signature alone (no log line quotes a part).
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if strings.Contains(logs.String(), tok) || len(sig) > 16 && strings.Contains(logs.String(), sig) {
			t.Fatal("a token is in the log")
		}
	}
	if !strings.Contains(logs.String(), "401") {
		t.Fatalf("the refusals were not logged at all (the check above proves nothing): %s", logs.String())
	}
}
