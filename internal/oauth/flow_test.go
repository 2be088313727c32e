package oauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A flow's callback is refused unless its state is the flow's, it came
// from the issuer the flow was sent to (RFC 9207) and in time; its code is
// exchanged with the PKCE verifier whose challenge was sent.
func TestAuthorizationCodeFlow(t *testing.T) {
	now := time.Unix(1_900_000_000, 0)
	var challenge string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if r.PostForm.Get("code") != "c0de" || base64.RawURLEncoding.EncodeToString(sum[:]) != challenge ||
			r.PostForm.Get("client_id") != "app" || r.PostForm.Get("resource") != "https://api.example" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "PKCE or code"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at-1", "refresh_token": "rt-1", "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(srv.Close)
	c := Client{Issuer: "https://as.example", AuthorizationEndpoint: "https://as.example/authorize", TokenEndpoint: srv.URL,
		IssParameter: true, ClientID: "app", RedirectURI: "https://gw.example/oauth/callback", Resource: "https://api.example", HTTP: srv.Client()}
	p := NewPending(now)
	u, _ := url.Parse(c.AuthorizeURL(p))
	q := u.Query()
	challenge = q.Get("code_challenge")
	if q.Get("state") != p.State || q.Get("code_challenge_method") != "S256" || q.Get("resource") != c.Resource || challenge == "" ||
		strings.Contains(u.String(), p.Verifier) {
		t.Fatalf("authorize URL: %s", u)
	}
	ok := url.Values{"state": {p.State}, "code": {"c0de"}, "iss": {c.Issuer}}
	for name, tc := range map[string]struct {
		q    url.Values
		at   time.Time
		want string
	}{
		"other state":  {url.Values{"state": {"x"}, "code": {"c0de"}, "iss": {c.Issuer}}, now, "state does not match"},
		"mix-up":       {url.Values{"state": {p.State}, "code": {"c0de"}, "iss": {"https://evil.example"}}, now, "RFC 9207"},
		"no iss":       {url.Values{"state": {p.State}, "code": {"c0de"}}, now, "carries no iss"},
		"refused":      {url.Values{"state": {p.State}, "error": {"access_denied"}, "iss": {c.Issuer}}, now, "access_denied"},
		"too late":     {ok, now.Add(PendingTTL + time.Second), "longer than"},
		"wrong verify": {url.Values{"state": {p.State}, "code": {"other"}, "iss": {c.Issuer}}, now, "invalid_grant"},
	} {
		if _, err := c.Finish(context.Background(), p, tc.q, tc.at); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	tok, err := c.Finish(context.Background(), p, ok, now)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "at-1" || tok.RefreshToken != "rt-1" || !tok.Expiry.Equal(now.Add(time.Hour)) || strings.Contains(tok.String(), "at-1") {
		t.Fatalf("tokens: %+v (%s)", tok, tok)
	}
}
