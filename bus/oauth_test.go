package bus

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

func TestOAuthCallerBounds(t *testing.T) {
	ok := OAuthCaller{Issuer: "https://idp.example/realms/r", User: "auth0|123", Email: "a@example.com",
		Teams: []string{"eng", "ops"}, Org: "acme", Expires: time.Unix(1_900_000_000, 0)}
	if e := ok.Validate(); e != nil {
		t.Fatalf("a valid caller was refused: %v", e)
	}
	for name, mutate := range map[string]func(*OAuthCaller){
		"no issuer":       func(c *OAuthCaller) { c.Issuer = "" },
		"long issuer":     func(c *OAuthCaller) { c.Issuer = strings.Repeat("i", MaxIssuerLen+1) },
		"no user":         func(c *OAuthCaller) { c.User = "" },
		"user with space": func(c *OAuthCaller) { c.User = "a b" },
		"user with CRLF":  func(c *OAuthCaller) { c.User = "a\r\nMcpbus-Caller-Admin: true" },
		"bad email":       func(c *OAuthCaller) { c.Email = "a\x00@b" },
		"team not an id":  func(c *OAuthCaller) { c.Teams = []string{"eng", "a.b>"} },
		"too many teams":  func(c *OAuthCaller) { c.Teams = make([]string, MaxOAuthTeams+1) },
		"org not an id":   func(c *OAuthCaller) { c.Org = "acme corp" },
		"no expiry":       func(c *OAuthCaller) { c.Expires = time.Time{} },
	} {
		c := ok
		c.Teams = append([]string(nil), ok.Teams...)
		mutate(&c)
		if e := c.Validate(); e == nil || e.Kind != ErrBadRequest {
			t.Errorf("%s: got %v, want a bad request", name, e)
		}
	}
}

func TestOAuthKeyIDIsPerIssuerAndAToken(t *testing.T) {
	a := OAuthKeyID("https://a.example", "alice|x y")
	if !ValidToken(a) || a != OAuthKeyID("https://a.example", "alice|x y") {
		t.Fatalf("key id %q is not a stable bus token", a)
	}
	if a == OAuthKeyID("https://b.example", "alice|x y") {
		t.Fatal("the same subject at two issuers got one key id")
	}
}

func TestEnvelopeRefusesAUserIDThatCannotTravel(t *testing.T) {
	h := nats.Header{}
	h.Set(HeaderUser, "a b")
	if _, err := ReadEnvelope(h); err == nil {
		t.Fatal("a user id with a space was accepted")
	}
	if got := (Identity{KeyID: "k1"}).UserKey(); got != "key:k1" {
		t.Fatalf("a key without a user owns credentials as %q", got)
	}
	if got := (Identity{KeyID: "k1", User: "alice"}).UserKey(); got != "user:alice" {
		t.Fatalf("a user's credentials are keyed %q", got)
	}
}
