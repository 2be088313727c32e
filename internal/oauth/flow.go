package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The gateway as an OAuth client (authorization code with PKCE, RFC 7636,
// OAuth 2.1): to sign a user in to the UI, and to obtain a user's own
// token for an upstream server. A flow is two requests apart (the
// redirect out, the callback), so its secrets (Pending) are kept by the
// caller between them, in the bus, for any replica to finish.

// Client is one OAuth client at one authorization server.
type Client struct {
	// Issuer is the authorization server's issuer identifier: the iss an
	// authorization response must carry (RFC 9207).
	Issuer string
	// AuthorizationEndpoint and TokenEndpoint are from its metadata.
	AuthorizationEndpoint, TokenEndpoint string
	// IssParameter: the server says it sends iss in authorization
	// responses (authorization_response_iss_parameter_supported), so one
	// without it is refused.
	IssParameter bool
	ClientID     string
	// ClientSecret, if set, authenticates the client (client_secret_basic);
	// empty: a public client.
	ClientSecret string
	RedirectURI  string
	Scopes       []string
	// Resource is the RFC 8707 resource the token is asked for, if any.
	Resource string
	HTTP     *http.Client
}

// ClientFromMetadata fills a Client's endpoints from an issuer's metadata.
func ClientFromMetadata(md Metadata) (Client, error) {
	c := Client{Issuer: md.String("issuer"), AuthorizationEndpoint: md.String("authorization_endpoint"), TokenEndpoint: md.String("token_endpoint")}
	c.IssParameter, _ = md["authorization_response_iss_parameter_supported"].(bool)
	if c.Issuer == "" || c.AuthorizationEndpoint == "" || c.TokenEndpoint == "" {
		return Client{}, fmt.Errorf("the issuer's metadata lacks issuer, authorization_endpoint or token_endpoint")
	}
	return c, nil
}

// Pending is a flow between its redirect and its callback: what must be
// kept (secret) to finish it.
type Pending struct {
	State    string    `json:"state"`
	Verifier string    `json:"verifier"`
	Created  time.Time `json:"created"`
}

// PendingTTL is how long a user has to sign in.
const PendingTTL = 10 * time.Minute

// NewPending makes a flow's state and PKCE verifier.
func NewPending(now time.Time) Pending {
	return Pending{State: random32(), Verifier: random32() + random32(), Created: now}
}

func random32() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// AuthorizeURL is where the user is sent to sign in.
func (c Client) AuthorizeURL(p Pending) string {
	sum := sha256.Sum256([]byte(p.Verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ClientID},
		"redirect_uri":          {c.RedirectURI},
		"state":                 {p.State},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
	}
	if len(c.Scopes) > 0 {
		q.Set("scope", strings.Join(c.Scopes, " "))
	}
	if c.Resource != "" {
		q.Set("resource", c.Resource)
	}
	sep := "?"
	if strings.Contains(c.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	return c.AuthorizationEndpoint + sep + q.Encode()
}

// Tokens are a token endpoint's answer. String never shows a token.
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

func (t Tokens) String() string {
	return fmt.Sprintf("tokens{type=%s scope=%q refresh=%t expiry=%s}", t.TokenType, t.Scope, t.RefreshToken != "", t.Expiry.Format(time.RFC3339))
}

// FlowError is a flow that did not end in tokens, with what the user or
// an admin can do about it. It never holds a code or token. Refused: the
// token endpoint answered with an OAuth error (a revoked or used refresh
// token, a bad code), not that it could not be reached.
type FlowError struct {
	Reason  string
	Refused bool
}

func (e *FlowError) Error() string { return e.Reason }

func flowErr(format string, args ...any) *FlowError {
	return &FlowError{Reason: fmt.Sprintf(format, args...)}
}

// Finish checks a callback's query against p (state, an error from the
// server, RFC 9207's iss) and exchanges its code for tokens.
func (c Client) Finish(ctx context.Context, p Pending, q url.Values, now time.Time) (Tokens, error) {
	if q.Get("state") == "" || q.Get("state") != p.State {
		return Tokens{}, flowErr("the sign-in's state does not match: start again")
	}
	if now.Sub(p.Created) > PendingTTL {
		return Tokens{}, flowErr("the sign-in took longer than %s: start again", PendingTTL)
	}
	// RFC 9207: an authorization response from another server (a mix-up
	// attack) is refused.
	if iss := q.Get("iss"); iss != "" && iss != c.Issuer {
		return Tokens{}, flowErr("the sign-in answer came from issuer %q, not %q: refused (RFC 9207)", shorten(iss), c.Issuer)
	} else if iss == "" && c.IssParameter {
		return Tokens{}, flowErr("the sign-in answer carries no iss though %s says it sends one: refused (RFC 9207)", c.Issuer)
	}
	if e := q.Get("error"); e != "" {
		return Tokens{}, flowErr("the identity provider refused the sign-in: %s %s", shorten(e), shorten(q.Get("error_description")))
	}
	code := q.Get("code")
	if code == "" {
		return Tokens{}, flowErr("the sign-in answer carries no code")
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}, "code_verifier": {p.Verifier}}
	return c.token(ctx, form, now)
}

// Refresh uses a refresh token.
func (c Client) Refresh(ctx context.Context, refreshToken string, now time.Time) (Tokens, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	t, err := c.token(ctx, form, now)
	if err == nil && t.RefreshToken == "" {
		t.RefreshToken = refreshToken // the server keeps the old one (RFC 6749 §6)
	}
	return t, err
}

// Exchange is OAuth 2.0 token exchange (RFC 8693): subjectToken, a token
// of the user's, for one the server issues for c.Resource (on behalf of).
func (c Client) Exchange(ctx context.Context, subjectToken, subjectType string, now time.Time) (Tokens, error) {
	form := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subjectToken},
		"subject_token_type": {subjectType}, "requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"}}
	if c.Resource != "" {
		// Providers differ on which names the target (Keycloak and Okta
		// read audience, others resource): RFC 8693 allows both.
		form.Set("audience", c.Resource)
	}
	return c.token(ctx, form, now)
}

const tokenMaxBytes = 64 << 10

func (c Client) token(ctx context.Context, form url.Values, now time.Time) (Tokens, error) {
	if c.ClientSecret == "" {
		form.Set("client_id", c.ClientID)
	}
	if c.Resource != "" {
		form.Set("resource", c.Resource)
	}
	if len(c.Scopes) > 0 && form.Get("grant_type") != "authorization_code" {
		form.Set("scope", strings.Join(c.Scopes, " "))
	}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.TokenEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Tokens{}, flowErr("the token endpoint is not a URL")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(c.ClientID), url.QueryEscape(c.ClientSecret))
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return Tokens{}, flowErr("the token endpoint of %s cannot be reached", c.Issuer)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken      string      `json:"access_token"`
		RefreshToken     string      `json:"refresh_token"`
		TokenType        string      `json:"token_type"`
		Scope            string      `json:"scope"`
		IDToken          string      `json:"id_token"`
		ExpiresIn        json.Number `json:"expires_in"`
		Error            string      `json:"error"`
		ErrorDescription string      `json:"error_description"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, tokenMaxBytes)).Decode(&body); err != nil {
		return Tokens{}, flowErr("the token endpoint of %s answered HTTP %d without JSON", c.Issuer, resp.StatusCode)
	}
	if resp.StatusCode != http.StatusOK || body.Error != "" || body.AccessToken == "" {
		e := flowErr("the token endpoint of %s refused: HTTP %d %s %s", c.Issuer, resp.StatusCode, shorten(body.Error), shorten(body.ErrorDescription))
		e.Refused = body.Error != "" && resp.StatusCode >= 400 && resp.StatusCode < 500
		return Tokens{}, e
	}
	t := Tokens{AccessToken: body.AccessToken, RefreshToken: body.RefreshToken, TokenType: body.TokenType, Scope: body.Scope, IDToken: body.IDToken}
	if n, err := body.ExpiresIn.Int64(); err == nil && n > 0 {
		t.Expiry = now.Add(time.Duration(n) * time.Second)
	}
	return t, nil
}
