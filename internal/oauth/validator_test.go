package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	testIssuer   = "https://idp.example.test/realms/acme"
	testResource = "https://gw.example.test/mcp"
)

// provider is an issuer's key set served on loopback, with the keys that
// sign its tokens.
type provider struct {
	srv     *httptest.Server
	keys    map[string]any // kid -> private key
	served  atomic.Value   // jose.JSONWebKeySet
	fetches atomic.Int32
}

func newProvider(t testing.TB) *provider {
	t.Helper()
	p := &provider{keys: map[string]any{}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		p.fetches.Add(1)
		_ = json.NewEncoder(w).Encode(p.served.Load())
	}))
	t.Cleanup(p.srv.Close)
	p.addRSA(t, "rsa-1")
	p.addEC(t, "ec-1")
	return p
}

func (p *provider) publish() {
	var set jose.JSONWebKeySet
	for kid, k := range p.keys {
		var pub any
		switch k := k.(type) {
		case *rsa.PrivateKey:
			pub = &k.PublicKey
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		}
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: pub, KeyID: kid, Use: "sig"})
	}
	p.served.Store(set)
}

func (p *provider) addRSA(t testing.TB, kid string) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p.keys[kid] = k
	p.publish()
}

func (p *provider) addEC(t testing.TB, kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.keys[kid] = k
	p.publish()
}

// sign makes a token with the key kid and alg.
func (p *provider) sign(t testing.TB, kid string, alg jose.SignatureAlgorithm, claims map[string]any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: jose.JSONWebKey{Key: p.keys[kid], KeyID: kid}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func claims(over map[string]any) map[string]any {
	now := time.Now()
	c := map[string]any{"iss": testIssuer, "aud": testResource, "sub": "user-123", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "groups": []string{"platform"}}
	for k, v := range over {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func validator(t *testing.T, p *provider) *Validator {
	t.Helper()
	v, err := New([]Issuer{{Issuer: testIssuer, Audiences: []string{testResource}, JWKSURL: p.srv.URL}}, p.srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestValidTokens(t *testing.T) {
	p := newProvider(t)
	v := validator(t, p)
	for _, tc := range []struct {
		kid string
		alg jose.SignatureAlgorithm
	}{{"rsa-1", jose.RS256}, {"rsa-1", jose.PS256}, {"ec-1", jose.ES256}} {
		c, e := v.Validate(context.Background(), p.sign(t, tc.kid, tc.alg, claims(nil)))
		if e != nil {
			t.Fatalf("%s %s: %v", tc.kid, tc.alg, e)
		}
		if c.Subject != "user-123" || c.Issuer != testIssuer || c.All["groups"] == nil {
			t.Fatalf("%s: claims %+v", tc.alg, c)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Errorf("the key set was fetched %d times for three tokens, want once", n)
	}
}

// Each bad token is refused with the check that failed, never quoting the
// token.
func TestBadTokensNameTheReason(t *testing.T) {
	p := newProvider(t)
	v := validator(t, p)
	other := newProvider(t) // same kids, other keys: a forged signature
	good := p.sign(t, "rsa-1", jose.RS256, claims(nil))
	parts := strings.Split(good, ".")
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"rsa-1"}`))
	hsSigner, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("a-shared-secret-of-32-bytes-long")}, nil)
	hs, _ := jwt.Signed(hsSigner).Claims(claims(nil)).Serialize()
	cases := []struct {
		name, token, want string
	}{
		{"wrong audience", p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"aud": "https://other.example.test"})), "not for this resource (aud must name " + testResource + ")"},
		{"wrong issuer", p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"iss": "https://evil.example.test"})), `issuer "https://evil.example.test" is not trusted`},
		{"expired", p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"exp": time.Now().Add(-10 * time.Minute).Unix()})), "the token expired at"},
		{"no expiry", p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"exp": nil})), "no expiry (exp)"},
		{"not yet valid", p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})), "not valid yet"},
		{"no subject", p.sign(t, "rsa-1", jose.RS256, claims(map[string]any{"sub": nil})), "no subject (sub)"},
		{"bad signature", other.sign(t, "rsa-1", jose.RS256, claims(nil)), "signature does not verify"},
		{"alg none", noneHeader + "." + parts[1] + ".", "algorithm not accepted"},
		{"HS256", hs, "algorithm not accepted"},
		{"not a JWT", "sk-1234567890abcdef", "not a JWT"},
		{"too long", strings.Repeat("a.", MaxTokenLen), "longer than"},
	}
	for _, c := range cases {
		_, e := v.Validate(context.Background(), c.token)
		if e == nil || !strings.Contains(e.Description, c.want) {
			t.Errorf("%s: %v, want %q", c.name, e, c.want)
			continue
		}
		if strings.Contains(e.Error(), c.token) && len(c.token) > 20 {
			t.Errorf("%s: the error quotes the token", c.name)
		}
		if e.Code != "invalid_token" && c.name != "too long" {
			t.Errorf("%s: code %q", c.name, e.Code)
		}
	}
}

// A rotated key is fetched once; a stream of unknown key ids does not make
// the validator fetch the key set each time.
func TestKeyRotationRefetchesAtMostEveryInterval(t *testing.T) {
	p := newProvider(t)
	v := validator(t, p)
	now := time.Now()
	v.now = func() time.Time { return now }
	if _, e := v.Validate(context.Background(), p.sign(t, "rsa-1", jose.RS256, claims(nil))); e != nil {
		t.Fatal(e)
	}
	p.addRSA(t, "rsa-2") // the provider rotates after the first fetch
	now = now.Add(refetchEvery + time.Second)
	if _, e := v.Validate(context.Background(), p.sign(t, "rsa-2", jose.RS256, claims(nil))); e != nil {
		t.Fatalf("the rotated key: %v", e)
	}
	before := p.fetches.Load()
	for i := range 20 {
		p.addRSA(t, "unknown-"+string(rune('a'+i)))
		tok := p.sign(t, "unknown-"+string(rune('a'+i)), jose.RS256, claims(nil))
		delete(p.keys, "unknown-"+string(rune('a'+i)))
		p.publish()
		if _, e := v.Validate(context.Background(), tok); e == nil || !strings.Contains(e.Description, "signing key") {
			t.Fatalf("an unknown key id: %v", e)
		}
	}
	if n := p.fetches.Load() - before; n > 1 {
		t.Fatalf("20 unknown key ids fetched the key set %d times within the interval, want at most 1", n)
	}
}

func TestIssuerConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		is   Issuer
		want string
	}{
		{Issuer{Issuer: testIssuer, JWKSURL: "http://127.0.0.1:1"}, "audience are required"},
		{Issuer{Issuer: testIssuer, JWKSURL: "http://127.0.0.1:1", Audiences: []string{testResource}, Algorithms: []string{"HS256"}}, `algorithm "HS256" is not accepted`},
		{Issuer{Issuer: testIssuer, JWKSURL: "http://127.0.0.1:1", Audiences: []string{testResource}, Algorithms: []string{"none"}}, `algorithm "none" is not accepted`},
	} {
		if _, err := New([]Issuer{tc.is}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.is, err, tc.want)
		}
	}
}
