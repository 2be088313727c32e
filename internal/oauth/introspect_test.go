package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// Opaque tokens are checked with the issuer's introspection endpoint
// (RFC 7662), authenticated as the gateway's client, with the token in the
// form body: an active answer gives the claims, anything else refuses the
// token with the reason.
func TestIntrospection(t *testing.T) {
	answers := map[string]map[string]any{
		"tok-good":     {"active": true, "sub": "u1", "aud": testResource + "/github", "exp": time.Now().Add(time.Hour).Unix(), "groups": []string{"eng"}, "uid": 42},
		"tok-noexp":    {"active": true, "sub": "u2"},
		"tok-revoked":  {"active": false},
		"tok-otheraud": {"active": true, "sub": "u3", "aud": "https://elsewhere.example", "exp": time.Now().Add(time.Hour).Unix()},
		"tok-otheriss": {"active": true, "sub": "u4", "iss": "https://evil.example"},
		"tok-nosub":    {"active": true},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "gw" || secret != "s3cret" || r.URL.RawQuery != "" || r.Method != http.MethodPost {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		a := answers[r.PostForm.Get("token")]
		if a == nil {
			a = map[string]any{"active": false}
		}
		_ = json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(srv.Close)
	v, err := New([]Issuer{{Issuer: testIssuer, Resource: testResource, JWKSURL: srv.URL}}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	if _, e := v.Introspect(context.Background(), "tok-good"); e == nil {
		t.Fatal("an opaque token was accepted with no introspection configured")
	}
	if err := v.SetIntrospection(Introspection{URL: srv.URL, ClientID: "gw", ClientSecret: "s3cret", Issuer: "https://nope"}); err == nil {
		t.Fatal("introspection for an issuer not trusted was accepted")
	}
	if err := v.SetIntrospection(Introspection{URL: srv.URL, ClientID: "gw", ClientSecret: "s3cret", Issuer: testIssuer}); err != nil {
		t.Fatal(err)
	}
	c, e := v.Introspect(context.Background(), "tok-good")
	if e != nil {
		t.Fatal(e)
	}
	if c.Subject != "u1" || c.Issuer != testIssuer || c.All["uid"] != float64(42) || time.Until(c.Expiry) < 50*time.Minute {
		t.Fatalf("claims: %+v", c)
	}
	if caller, e := v.Caller(c, ""); e != nil || caller.User != "u1" {
		t.Fatalf("caller of introspected claims: %+v %v", caller, e)
	}
	c, e = v.Introspect(context.Background(), "tok-noexp")
	if e != nil || time.Until(c.Expiry) > MaxIntrospectedLifetime {
		t.Fatalf("a token without exp is trusted until %v (%v)", c.Expiry, e)
	}
	for tok, want := range map[string]string{
		"tok-revoked":  "not active",
		"tok-unknown":  "not active",
		"tok-otheraud": "not for this resource",
		"tok-otheriss": "is not",
		"tok-nosub":    "no subject",
	} {
		if _, e := v.Introspect(context.Background(), tok); e == nil || e.Code != "invalid_token" || !strings.Contains(e.Description, want) {
			t.Errorf("%s: %v, want invalid_token naming %q", tok, e, want)
		}
	}
	// The gateway's own credentials wrong: the issuer is unavailable to it,
	// which is not the token's fault.
	v2, _ := New([]Issuer{{Issuer: testIssuer, Resource: testResource, JWKSURL: srv.URL}}, srv.Client())
	_ = v2.SetIntrospection(Introspection{URL: srv.URL, ClientID: "gw", ClientSecret: "wrong", Issuer: testIssuer})
	if _, e := v2.Introspect(context.Background(), "tok-good"); e == nil || e.Code != "temporarily_unavailable" || !strings.Contains(e.Description, "HTTP 401") {
		t.Fatalf("bad gateway credentials: %v", e)
	}
}
