package testidp

import (
	"maps"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MintAccessToken signs an access token directly with the provider's key,
// bypassing every grant: for negative tests (an expired token, a wrong
// audience). It has iss, sub = user, aud = audience, iat, nbf, exp = now
// + ttl (a negative ttl mints an expired token; validators allow some
// clock skew, mcpbus's 60 s), jti, client_id "testidp-mint", and the
// user's groups and email when user is a configured user. extra claims
// are added last and win, so they can also replace any of these.
func (p *IdP) MintAccessToken(user, audience string, ttl time.Duration, extra map[string]any) string {
	now := p.store.now()
	claims := map[string]any{
		"iss":       p.issuer,
		"sub":       user,
		"aud":       audience,
		"iat":       now.Unix(),
		"nbf":       now.Unix(),
		"exp":       now.Add(ttl).Unix(),
		"jti":       randomID(),
		"client_id": "testidp-mint",
	}
	if u := p.store.user(user); u != nil {
		claims["groups"] = groupsOf(u)
		if u.Email != "" {
			claims["email"] = u.Email
		}
	}
	maps.Copy(claims, extra)
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.store.key, KeyID: p.store.keyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		panic("testidp: MintAccessToken: signer: " + err.Error())
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		panic("testidp: MintAccessToken: " + err.Error())
	}
	return tok
}
