package testidp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"
)

// Tokens is a token endpoint answer.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// OAuthError is a refusal by an endpoint: the OAuth error code and
// description, with the HTTP status (0 when it came in a redirect).
type OAuthError struct {
	Endpoint    string
	Status      int
	Code        string
	Description string
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("testidp: %s refused (status %d): %s: %s", e.Endpoint, e.Status, e.Code, e.Description)
}

// CodeRequest is an authorization request AuthorizeCode makes and signs
// in to, as a browser would.
type CodeRequest struct {
	ClientID    string
	RedirectURI string
	// Resource is the RFC 8707 resource; empty sends none.
	Resource string
	Scopes   []string
	// User is the user's id or email; Password theirs.
	User     string
	Password string
	// CodeChallengeMethod defaults to S256; "-" sends no PKCE at all.
	CodeChallengeMethod string
}

// AuthorizeCode runs the browser half of the code flow: GET /authorize,
// the login form POST, and op's callback, stopping at the redirect to the
// client. It returns the code and the PKCE verifier for ExchangeCode.
func (p *IdP) AuthorizeCode(ctx context.Context, req CodeRequest) (code, verifier string, err error) {
	verifier = randomVerifier()
	state := randomID()
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {req.ClientID},
		"redirect_uri":  {req.RedirectURI},
		"state":         {state},
		"scope":         {strings.Join(req.Scopes, " ")},
	}
	switch req.CodeChallengeMethod {
	case "-":
		verifier = ""
	case "", "S256":
		sum := sha256.Sum256([]byte(verifier))
		q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
		q.Set("code_challenge_method", "S256")
	default:
		q.Set("code_challenge", verifier)
		q.Set("code_challenge_method", req.CodeChallengeMethod)
	}
	if req.Resource != "" {
		q.Set("resource", req.Resource)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	loc, err := p.expectRedirect(ctx, hc, http.MethodGet, p.issuer+"/authorize?"+q.Encode(), nil, "authorization")
	if err != nil {
		return "", "", err
	}
	if !strings.HasPrefix(loc.String(), p.issuer+loginPath+"?") {
		if oauthErr := redirectError(loc, "authorization"); oauthErr != nil {
			return "", "", oauthErr
		}
		return "", "", fmt.Errorf("testidp: authorization redirected to %s, not to the login page", loc.Redacted())
	}
	form := url.Values{"id": {loc.Query().Get("id")}, "username": {req.User}, "password": {req.Password}}
	loc, err = p.expectRedirect(ctx, hc, http.MethodPost, p.issuer+loginPath, form, "login")
	if err != nil {
		return "", "", err
	}
	loc, err = p.expectRedirect(ctx, hc, http.MethodGet, loc.String(), nil, "authorization callback")
	if err != nil {
		return "", "", err
	}
	if oauthErr := redirectError(loc, "authorization"); oauthErr != nil {
		return "", "", oauthErr
	}
	if got := loc.Query().Get("state"); got != state {
		return "", "", fmt.Errorf("testidp: the redirect carried state %q, want %q", got, state)
	}
	if loc.Query().Get("iss") != "" && loc.Query().Get("iss") != p.issuer {
		return "", "", fmt.Errorf("testidp: the redirect carried iss %q, want %q", loc.Query().Get("iss"), p.issuer)
	}
	return loc.Query().Get("code"), verifier, nil
}

// expectRedirect makes one request and returns where it redirects; any
// other answer is an error naming the step and what came back.
func (p *IdP) expectRedirect(ctx context.Context, hc *http.Client, method, target string, form url.Values, step string) (*url.URL, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, fmt.Errorf("testidp: %s: %w", step, err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("testidp: %s: %w", step, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil, responseError(step, resp.StatusCode, msg)
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("testidp: %s: a redirect without a Location: %w", step, err)
	}
	return loc, nil
}

// redirectError is the OAuth error a redirect to the client carries, or nil.
func redirectError(loc *url.URL, endpoint string) *OAuthError {
	if code := loc.Query().Get("error"); code != "" {
		return &OAuthError{Endpoint: endpoint, Code: code, Description: loc.Query().Get("error_description")}
	}
	return nil
}

// responseError reads an OAuth JSON error, or says what else came back.
func responseError(endpoint string, status int, body []byte) error {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error != "" {
		return &OAuthError{Endpoint: endpoint, Status: status, Code: e.Error, Description: e.Description}
	}
	text := strings.TrimSpace(string(body))
	if strings.Contains(text, "wrong username or password") {
		text = "wrong username or password"
	}
	return &OAuthError{Endpoint: endpoint, Status: status, Code: http.StatusText(status), Description: text}
}

// ExchangeCode redeems a code at the token endpoint; resource, if not
// empty, is sent as RFC 8707 asks. A confidential client authenticates
// with its configured secret.
func (p *IdP) ExchangeCode(ctx context.Context, clientID, code, redirectURI, verifier, resource string) (*Tokens, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	if verifier != "" {
		form.Set("code_verifier", verifier)
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	return p.token(ctx, clientID, form)
}

// AuthorizationCodeFlow signs user in for clientID with PKCE S256 and
// returns the tokens the code is exchanged for. resource, if not empty, is
// sent on both requests; scopes default to openid.
func (p *IdP) AuthorizationCodeFlow(ctx context.Context, clientID, redirectURI, resource, user, password string, scopes ...string) (*Tokens, error) {
	if len(scopes) == 0 {
		scopes = []string{"openid"}
	}
	code, verifier, err := p.AuthorizeCode(ctx, CodeRequest{ClientID: clientID, RedirectURI: redirectURI, Resource: resource, Scopes: scopes, User: user, Password: password})
	if err != nil {
		return nil, err
	}
	return p.ExchangeCode(ctx, clientID, code, redirectURI, verifier, resource)
}

// Refresh redeems a refresh token (it is rotated: use the new one).
func (p *IdP) Refresh(ctx context.Context, clientID, refreshToken, resource string) (*Tokens, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	if resource != "" {
		form.Set("resource", resource)
	}
	return p.token(ctx, clientID, form)
}

// ClientCredentials gets a token for a confidential client itself.
func (p *IdP) ClientCredentials(ctx context.Context, clientID, resource string, scopes ...string) (*Tokens, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	return p.token(ctx, clientID, form)
}

// Revoke revokes a token (RFC 7009) as clientID.
func (p *IdP) Revoke(ctx context.Context, clientID, token string) error {
	_, err := p.post(ctx, "revocation", p.issuer+"/revoke", clientID, url.Values{"token": {token}})
	return err
}

func (p *IdP) token(ctx context.Context, clientID string, form url.Values) (*Tokens, error) {
	body, err := p.post(ctx, "token", p.TokenURL(), clientID, form)
	if err != nil {
		return nil, err
	}
	var t Tokens
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("testidp: the token endpoint answered no access token: %.200s", body)
	}
	return &t, nil
}

// post sends form as clientID: with HTTP Basic when the client has a
// secret, else client_id in the form.
func (p *IdP) post(ctx context.Context, endpoint, target, clientID string, form url.Values) ([]byte, error) {
	secret := p.clientSecret(clientID)
	if secret == "" {
		form.Set("client_id", clientID)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("testidp: %s: %w", endpoint, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if secret != "" {
		req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("testidp: %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("testidp: %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, responseError(endpoint, resp.StatusCode, body)
	}
	return body, nil
}

func (p *IdP) clientSecret(clientID string) string {
	if p.store == nil {
		return ""
	}
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	if c, ok := p.store.clients[clientID]; ok {
		return c.secret
	}
	return ""
}

// randomVerifier is a PKCE code verifier: 43 characters of base64url.
func randomVerifier() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic("testidp: crypto/rand: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
