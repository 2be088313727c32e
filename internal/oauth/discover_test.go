package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// A token for the gateway's resource, or for an MCP path under it, is for
// this gateway; a URL that merely starts with the same characters, or
// another resource, is not.
func TestResourceAudience(t *testing.T) {
	p := newProvider(t)
	v, err := New([]Issuer{{Issuer: testIssuer, Resource: testResource + "/", JWKSURL: p.srv.URL}}, p.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	for aud, ok := range map[string]bool{
		testResource:                 true,
		testResource + "/github":     true,
		testResource + "evil":        false,
		"https://other.example/mcp":  false,
		"https://gw.example.test":    false,
		testResource + "/github/x/y": true,
	} {
		_, e := v.Validate(context.Background(), p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"aud": aud})))
		if (e == nil) != ok {
			t.Errorf("aud %q: accepted=%v, want %v (%v)", aud, e == nil, ok, e)
		}
		if e != nil && !strings.Contains(e.Description, testResource+" (or a URL under it)") {
			t.Errorf("aud %q refused without naming the resource: %v", aud, e)
		}
	}
}

// Without jwks_url, the key set is found through the issuer's discovery
// document, which must name the issuer exactly.
func TestDiscoveredKeySet(t *testing.T) {
	p := newProvider(t)
	var issuer string
	docIssuer := func() string { return issuer }
	mux := http.NewServeMux()
	mux.HandleFunc("/realm/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": docIssuer(), "jwks_uri": p.srv.URL})
	})
	idp := httptest.NewServer(mux)
	t.Cleanup(idp.Close)
	issuer = idp.URL + "/realm"

	v, err := New([]Issuer{{Issuer: issuer, Resource: testResource}}, idp.Client())
	if err != nil {
		t.Fatal(err)
	}
	tok := p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"iss": issuer}))
	if _, e := v.Validate(context.Background(), tok); e != nil {
		t.Fatalf("a token of a discovered key set: %v", e)
	}

	// A document naming another issuer is not trusted for this one.
	other := idp.URL + "/realm2"
	mux.HandleFunc("/realm2/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": issuer, "jwks_uri": p.srv.URL})
	})
	v2, err := New([]Issuer{{Issuer: other, Resource: testResource}}, idp.Client())
	if err != nil {
		t.Fatal(err)
	}
	_, e := v2.Validate(context.Background(), p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"iss": other})))
	if e == nil || !strings.Contains(e.Description, "cannot be discovered") || !strings.Contains(e.Description, "names issuer") {
		t.Fatalf("a document of another issuer: %v", e)
	}
}
