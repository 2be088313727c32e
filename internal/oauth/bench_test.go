package oauth

import (
	"context"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// BenchmarkValidate is what a request with a token the verify cache does
// not hold costs the ingress: an RS256 and an ES256 token checked against
// a key set already fetched.
func BenchmarkValidate(b *testing.B) {
	p := newProvider(b)
	v, err := New([]Issuer{{Issuer: testIssuer, Audiences: []string{testResource}, JWKSURL: p.srv.URL}}, p.srv.Client())
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name, kid string
		alg       jose.SignatureAlgorithm
	}{{"RS256", "rsa-1", jose.RS256}, {"ES256", "ec-1", jose.ES256}} {
		tok := p.sign(b, tc.kid, tc.alg, claims(nil))
		if _, e := v.Validate(context.Background(), tok); e != nil {
			b.Fatal(e)
		}
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				if _, e := v.Validate(context.Background(), tok); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}
