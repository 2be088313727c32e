package testidp

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mcpbus/mcpbus/internal/oauth"
)

const (
	resource    = "http://127.0.0.1:4000/mcp"
	redirectURI = "http://127.0.0.1/callback"
	ttl         = 90 * time.Second
)

func start(t *testing.T) *IdP {
	t.Helper()
	return StartT(t, Options{
		Users: []User{
			{ID: "alice", Email: "alice@example.test", Password: "alice-pw", Groups: []string{"eng"}},
			{ID: "bob", Password: "bob-pw", Groups: []string{"ops", "eng"}},
		},
		Clients: []Client{
			{ID: "mcp-client", RedirectURIs: []string{redirectURI}},
			{ID: "svc", Secret: "svc-secret", RedirectURIs: []string{"https://svc.example.test/cb"}},
		},
		AccessTokenTTL: ttl,
	})
}

// validate checks a token with the gateway's own validator, for aud.
func validate(t *testing.T, idp *IdP, aud, token string) (oauth.Claims, *oauth.Error) {
	t.Helper()
	v, err := oauth.New([]oauth.Issuer{{Issuer: idp.Issuer(), Audiences: []string{aud}, JWKSURL: idp.JWKSURL()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return v.Validate(context.Background(), token)
}

func getJSON(t *testing.T, url string, into any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// Both metadata documents name this issuer, its JWKS, S256 only and the
// registration endpoint; the JWKS has the signing key.
func TestDiscovery(t *testing.T) {
	idp := start(t)
	for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server"} {
		var md struct {
			Issuer       string   `json:"issuer"`
			JWKS         string   `json:"jwks_uri"`
			Token        string   `json:"token_endpoint"`
			Register     string   `json:"registration_endpoint"`
			Revoke       string   `json:"revocation_endpoint"`
			PKCE         []string `json:"code_challenge_methods_supported"`
			AuthMethods  []string `json:"token_endpoint_auth_methods_supported"`
			Scopes       []string `json:"scopes_supported"`
			Grants       []string `json:"grant_types_supported"`
			ResponseType []string `json:"response_types_supported"`
		}
		getJSON(t, idp.Issuer()+path, &md)
		if md.Issuer != idp.Issuer() || md.JWKS != idp.JWKSURL() || md.Token != idp.TokenURL() || md.Register != idp.Issuer()+"/register" || md.Revoke != idp.Issuer()+"/revoke" {
			t.Errorf("%s: endpoints %+v", path, md)
		}
		if !slices.Equal(md.PKCE, []string{"S256"}) || !slices.Equal(md.ResponseType, []string{"code"}) ||
			!slices.Contains(md.AuthMethods, "none") || !slices.Contains(md.Scopes, "offline_access") ||
			!slices.Contains(md.Grants, "client_credentials") || slices.Contains(md.Grants, "implicit") {
			t.Errorf("%s: capabilities %+v", path, md)
		}
	}
	var jwks jose.JSONWebKeySet
	getJSON(t, idp.JWKSURL(), &jwks)
	if keys := jwks.Key(idp.KeyID()); len(keys) != 1 || keys[0].Algorithm != "RS256" || !keys[0].IsPublic() {
		t.Errorf("jwks %+v, want the public RS256 key %s", jwks, idp.KeyID())
	}
}

// The code flow of a public client with PKCE, from a loopback redirect on
// another port, yields an RS256 access token for the resource that the
// gateway's validator accepts, and an ID token for the client only.
func TestCodeFlowPublicClient(t *testing.T) {
	idp := start(t)
	ctx := context.Background()
	redirect := "http://127.0.0.1:54321/callback" // registered without a port
	tok, err := idp.AuthorizationCodeFlow(ctx, "mcp-client", redirect, resource, "alice@example.test", "alice-pw", "openid", "email", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	if tok.TokenType != "Bearer" || tok.RefreshToken == "" || tok.IDToken == "" || tok.ExpiresIn <= 0 || tok.ExpiresIn > int64(ttl/time.Second) {
		t.Errorf("token response %+v", tok)
	}
	claims, verr := validate(t, idp, resource, tok.AccessToken)
	if verr != nil {
		t.Fatalf("the gateway's validator refused the access token: %v", verr)
	}
	if claims.Subject != "alice" || !slices.Equal(claims.Audience, []string{resource}) {
		t.Errorf("sub %q aud %v, want alice and [%s]", claims.Subject, claims.Audience, resource)
	}
	if g, _ := claims.All["groups"].([]any); len(g) != 1 || g[0] != "eng" {
		t.Errorf("groups %v, want [eng]", claims.All["groups"])
	}
	if claims.All["email"] != "alice@example.test" || claims.All["client_id"] != "mcp-client" {
		t.Errorf("claims %v", claims.All)
	}
	iat, _ := claims.All["iat"].(float64)
	if got := claims.Expiry.Unix() - int64(iat); got != int64(ttl/time.Second) {
		t.Errorf("exp - iat = %d s, want the configured %v", got, ttl)
	}
	parsed, err := jwt.ParseSigned(tok.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || parsed.Headers[0].KeyID != idp.KeyID() {
		t.Errorf("access token header: %v %+v", err, parsed)
	}

	// The ID token is for the client: the gateway must not take it.
	if _, verr := validate(t, idp, resource, tok.IDToken); verr == nil || !strings.Contains(verr.Description, "not for this resource") {
		t.Errorf("ID token accepted as an access token for the resource: %v", verr)
	}
	idClaims, verr := validate(t, idp, "mcp-client", tok.IDToken)
	if verr != nil {
		t.Fatalf("ID token: %v", verr)
	}
	if !slices.Equal(idClaims.Audience, []string{"mcp-client"}) || idClaims.All["email"] != "alice@example.test" {
		t.Errorf("ID token aud %v claims %v", idClaims.Audience, idClaims.All)
	}
	if g, _ := idClaims.All["groups"].([]any); len(g) != 1 || g[0] != "eng" {
		t.Errorf("ID token groups %v, want [eng]", idClaims.All["groups"])
	}
}

// Without a resource the access token's audience is the client; without
// offline_access there is no refresh token.
func TestCodeFlowWithoutResource(t *testing.T) {
	idp := start(t)
	tok, err := idp.AuthorizationCodeFlow(context.Background(), "mcp-client", redirectURI, "", "bob", "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	claims, verr := validate(t, idp, "mcp-client", tok.AccessToken)
	if verr != nil {
		t.Fatal(verr)
	}
	if !slices.Equal(claims.Audience, []string{"mcp-client"}) || tok.RefreshToken != "" {
		t.Errorf("aud %v refresh %q, want [mcp-client] and none", claims.Audience, tok.RefreshToken)
	}
}

func oauthCode(err error) string {
	var e *OAuthError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// A refresh keeps the audience and rotates the refresh token; the old one
// and one revoked stop working; a resource not granted is refused.
func TestRefresh(t *testing.T) {
	idp := start(t)
	ctx := context.Background()
	tok, err := idp.AuthorizationCodeFlow(ctx, "mcp-client", redirectURI, resource, "alice", "alice-pw", "openid", "offline_access")
	if err != nil {
		t.Fatal(err)
	}
	again, err := idp.Refresh(ctx, "mcp-client", tok.RefreshToken, "")
	if err != nil {
		t.Fatal(err)
	}
	if again.RefreshToken == "" || again.RefreshToken == tok.RefreshToken || again.AccessToken == tok.AccessToken {
		t.Errorf("refresh did not rotate: %+v", again)
	}
	claims, verr := validate(t, idp, resource, again.AccessToken)
	if verr != nil || claims.Subject != "alice" {
		t.Fatalf("refreshed access token: %v %+v", verr, claims)
	}
	if _, err := idp.Refresh(ctx, "mcp-client", tok.RefreshToken, ""); oauthCode(err) != "invalid_grant" {
		t.Errorf("a used refresh token: %v, want invalid_grant", err)
	}
	if _, err := idp.Refresh(ctx, "mcp-client", again.RefreshToken, "http://127.0.0.1:4001/other"); oauthCode(err) != "invalid_target" {
		t.Errorf("a resource not granted: %v, want invalid_target", err)
	}
	if err := idp.Revoke(ctx, "mcp-client", again.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := idp.Refresh(ctx, "mcp-client", again.RefreshToken, ""); oauthCode(err) != "invalid_grant" {
		t.Errorf("a revoked refresh token: %v, want invalid_grant", err)
	}
}

func TestWrongPasswordRefused(t *testing.T) {
	idp := start(t)
	for _, user := range []string{"alice", "nobody"} {
		_, err := idp.AuthorizationCodeFlow(context.Background(), "mcp-client", redirectURI, resource, user, "wrong")
		var e *OAuthError
		if !errors.As(err, &e) || e.Status != http.StatusUnauthorized || !strings.Contains(e.Description, "wrong username or password") {
			t.Errorf("%s with a wrong password: %v, want a 401 from the login", user, err)
		}
	}
}

// PKCE: a wrong verifier is refused and burns the code; a public client
// without S256 PKCE is refused at the authorization endpoint.
func TestPKCE(t *testing.T) {
	idp := start(t)
	ctx := context.Background()
	req := CodeRequest{ClientID: "mcp-client", RedirectURI: redirectURI, Resource: resource, Scopes: []string{"openid"}, User: "alice", Password: "alice-pw"}
	code, verifier, err := idp.AuthorizeCode(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := idp.ExchangeCode(ctx, "mcp-client", code, redirectURI, randomVerifier(), resource); oauthCode(err) != "invalid_grant" {
		t.Errorf("wrong verifier: %v, want invalid_grant", err)
	}
	if _, err := idp.ExchangeCode(ctx, "mcp-client", code, redirectURI, verifier, resource); oauthCode(err) != "invalid_grant" {
		t.Errorf("the code after a failed exchange: %v, want invalid_grant", err)
	}
	for _, method := range []string{"-", "plain"} {
		req.CodeChallengeMethod = method
		if _, _, err := idp.AuthorizeCode(ctx, req); oauthCode(err) != "invalid_request" {
			t.Errorf("code_challenge_method %q: %v, want invalid_request", method, err)
		}
	}
}

// A code is good once, for its client and redirect URI, and the resource
// at the token endpoint must be one authorized.
func TestCodeChecks(t *testing.T) {
	idp := start(t)
	ctx := context.Background()
	req := CodeRequest{ClientID: "mcp-client", RedirectURI: redirectURI, Resource: resource, Scopes: []string{"openid"}, User: "alice", Password: "alice-pw"}
	for name, exchange := range map[string]func(code, verifier string) error{
		"reused": func(code, verifier string) error {
			if _, err := idp.ExchangeCode(ctx, "mcp-client", code, redirectURI, verifier, resource); err != nil {
				return err
			}
			_, err := idp.ExchangeCode(ctx, "mcp-client", code, redirectURI, verifier, resource)
			return err
		},
		"other redirect": func(code, verifier string) error {
			_, err := idp.ExchangeCode(ctx, "mcp-client", code, "http://127.0.0.1/other", verifier, resource)
			return err
		},
		"other resource": func(code, verifier string) error {
			_, err := idp.ExchangeCode(ctx, "mcp-client", code, redirectURI, verifier, "http://127.0.0.1:4001/mcp")
			return err
		},
	} {
		code, verifier, err := idp.AuthorizeCode(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := exchange(code, verifier); oauthCode(err) != "invalid_grant" && oauthCode(err) != "invalid_target" {
			t.Errorf("%s: %v, want a refusal", name, err)
		}
	}
}

// An unknown client, an unregistered redirect URI and a bad resource are
// refused; the first two without redirecting anywhere.
func TestAuthorizationRefusals(t *testing.T) {
	idp := start(t)
	ctx := context.Background()
	base := CodeRequest{ClientID: "mcp-client", RedirectURI: redirectURI, Scopes: []string{"openid"}, User: "alice", Password: "alice-pw"}
	cases := map[string]func(*CodeRequest){
		"unknown client":        func(r *CodeRequest) { r.ClientID = "nobody" },
		"unregistered redirect": func(r *CodeRequest) { r.RedirectURI = "http://127.0.0.1/elsewhere" },
		"non-loopback redirect": func(r *CodeRequest) { r.RedirectURI = "http://evil.example.test/callback" },
	}
	for name, edit := range cases {
		req := base
		edit(&req)
		_, _, err := idp.AuthorizeCode(ctx, req)
		var e *OAuthError
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
			t.Errorf("%s: %v, want a 400 from the authorization endpoint itself", name, err)
		}
	}
	req := base
	req.Resource = "not-a-uri"
	if _, _, err := idp.AuthorizeCode(ctx, req); oauthCode(err) != "invalid_target" {
		t.Errorf("bad resource: %v, want invalid_target", err)
	}
}

// A confidential client gets a token for itself with its secret, not
// without; a public client may not use client credentials.
func TestClientCredentials(t *testing.T) {
	idp := start(t)
	ctx := context.Background()
	tok, err := idp.ClientCredentials(ctx, "svc", resource, "tools")
	if err != nil {
		t.Fatal(err)
	}
	claims, verr := validate(t, idp, resource, tok.AccessToken)
	if verr != nil || claims.Subject != "svc" || claims.All["scope"] != "tools" || claims.All["groups"] != nil {
		t.Errorf("client credentials token: %v %+v", verr, claims)
	}
	if _, err := idp.ClientCredentials(ctx, "mcp-client", resource); oauthCode(err) == "" {
		t.Errorf("a public client: %v, want a refusal", err)
	}
	for _, secret := range []string{"wrong", ""} {
		req, _ := http.NewRequest(http.MethodPost, idp.TokenURL(), strings.NewReader("grant_type=client_credentials"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc", secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("secret %q: a token", secret)
		}
	}
}

// Minted tokens: a good one passes the gateway's validator; expired or for
// another audience they are refused for that reason.
func TestMintAccessToken(t *testing.T) {
	idp := start(t)
	claims, verr := validate(t, idp, resource, idp.MintAccessToken("alice", resource, time.Minute, map[string]any{"org_id": "o1"}))
	if verr != nil || claims.Subject != "alice" || claims.All["org_id"] != "o1" || claims.All["groups"] == nil {
		t.Errorf("minted: %v %+v", verr, claims)
	}
	if _, verr := validate(t, idp, resource, idp.MintAccessToken("alice", resource, -5*time.Minute, nil)); verr == nil || !strings.Contains(verr.Description, "expired") {
		t.Errorf("expired: %v", verr)
	}
	if _, verr := validate(t, idp, resource, idp.MintAccessToken("alice", "http://127.0.0.1:1/other", time.Minute, nil)); verr == nil || !strings.Contains(verr.Description, "not for this resource") {
		t.Errorf("wrong audience: %v", verr)
	}
}

func TestStartRefusals(t *testing.T) {
	for name, opts := range map[string]Options{
		"non-loopback":              {Addr: "0.0.0.0:0"},
		"user without password":     {Users: []User{{ID: "a"}}},
		"public client credentials": {Clients: []Client{{ID: "c", RedirectURIs: []string{redirectURI}, GrantTypes: []string{"client_credentials"}}}},
		"code without redirect":     {Clients: []Client{{ID: "c"}}},
		"unknown grant":             {Clients: []Client{{ID: "c", Secret: "s", GrantTypes: []string{"password"}}}},
	} {
		if idp, err := Start(context.Background(), opts); err == nil {
			idp.Close()
			t.Errorf("%s: started", name)
		}
	}
}

// A sign-in request completes once: posting the login form again, even
// with another user's good password, does not change whose code it is.
func TestLoginOnce(t *testing.T) {
	idp := start(t)
	ctx := context.Background()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := "response_type=code&client_id=mcp-client&scope=openid&redirect_uri=" + redirectURI +
		"&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM&code_challenge_method=S256"
	loc, err := idp.expectRedirect(ctx, hc, http.MethodGet, idp.Issuer()+"/authorize?"+q, nil, "authorization")
	if err != nil {
		t.Fatal(err)
	}
	id := loc.Query().Get("id")
	if _, err := idp.expectRedirect(ctx, hc, http.MethodPost, idp.Issuer()+"/login", map[string][]string{"id": {id}, "username": {"alice"}, "password": {"alice-pw"}}, "login"); err != nil {
		t.Fatal(err)
	}
	_, err = idp.expectRedirect(ctx, hc, http.MethodPost, idp.Issuer()+"/login", map[string][]string{"id": {id}, "username": {"bob"}, "password": {"bob-pw"}}, "login")
	var e *OAuthError
	if !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Errorf("a second sign-in: %v, want a 401", err)
	}
	if a, err := idp.store.AuthRequestByID(ctx, id); err != nil || a.GetSubject() != "alice" {
		t.Errorf("the request is %v's (%v), want alice's", a, err)
	}
}
