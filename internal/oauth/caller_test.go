package oauth

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// Claims become the caller auth is asked about, by the issuer's claim
// fields: nested paths, lists or one string, numbers as ids, values that
// cannot be team ids left out, and the default team last.
func TestCallerFromClaims(t *testing.T) {
	exp := time.Unix(1_900_000_000, 0)
	v, err := New([]Issuer{{Issuer: testIssuer, Resource: testResource, JWKSURL: "http://127.0.0.1:1",
		Claims: ClaimFields{UserID: "oid", UserEmail: "upn", TeamIDs: "realm_access.roles", TeamID: "tid", OrgID: "org"}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]any{"sub": "s", "oid": float64(4711), "upn": "a@example.com", "tid": "ops", "org": "acme",
		"realm_access": map[string]any{"roles": []any{"eng", "/eng/backend", "eng", 7, "sre"}}}
	c, e := v.Caller(Claims{Issuer: testIssuer, Expiry: exp, All: all}, "everyone")
	if e != nil {
		t.Fatal(e)
	}
	if c.User != "4711" || c.Email != "a@example.com" || c.Org != "acme" || !c.Expires.Equal(exp) ||
		!reflect.DeepEqual(c.Teams, []string{"eng", "sre", "ops", "everyone"}) {
		t.Fatalf("caller: %+v", c)
	}

	delete(all, "oid")
	if _, e := v.Caller(Claims{Issuer: testIssuer, Expiry: exp, All: all}, ""); e == nil || !strings.Contains(e.Description, "oid claim (the user id) is missing") {
		t.Fatalf("no user claim: %v", e)
	}
	all["oid"], all["org"] = "u1", "acme corp"
	if _, e := v.Caller(Claims{Issuer: testIssuer, Expiry: exp, All: all}, ""); e == nil || !strings.Contains(e.Description, "org claim (the organization)") {
		t.Fatalf("a bad organization: %v", e)
	}
	if _, e := v.Caller(Claims{Issuer: "https://other.example", Expiry: exp, All: all}, ""); e == nil {
		t.Fatal("claims of an issuer not trusted were mapped")
	}
}
