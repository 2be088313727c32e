package bus

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// OAuthCaller is who a valid OAuth access token says the caller is. The
// ingress validates the token (signature, issuer, audience, expiry) and sends
// auth only this, never the token: like a gateway key, a bearer token does
// not travel on the bus. Auth maps it to an Identity (teams, organization,
// permissions) as it maps a key hash.
type OAuthCaller struct {
	// Issuer is the token's exact "iss".
	Issuer string `json:"iss"`
	// User is the user the token names (litellm_jwtauth.user_id_jwt_field,
	// default "sub").
	User string `json:"user_id"`
	// Email is the user's email claim, if any (display only).
	Email string `json:"email,omitempty"`
	// Teams are the ids the token's team claims name, in the token's order;
	// ids that are no team id are dropped by the ingress.
	Teams []string `json:"teams,omitempty"`
	// Org is the organization claim (org_id_jwt_field), if any.
	Org string `json:"org_id,omitempty"`
	// Expires is the token's "exp": the identity is not reused past it.
	Expires time.Time `json:"exp"`
}

// Bounds of an OAuthCaller.
const (
	MaxIssuerLen  = 512
	MaxOAuthTeams = 64
)

// Validate checks every field against the bounds the bus carries.
func (c *OAuthCaller) Validate() *Error {
	switch {
	case c.Issuer == "" || len(c.Issuer) > MaxIssuerLen || !ValidHeaderValue(c.Issuer):
		return Errorf(ErrBadRequest, "oauth caller: the issuer must be 1-%d bytes of text", MaxIssuerLen)
	case !ValidUserID(c.User):
		return Errorf(ErrBadRequest, "oauth caller: the user id must be 1-%d printable characters without spaces", MaxUserIDLen)
	case c.Email != "" && !ValidUserID(c.Email):
		return Errorf(ErrBadRequest, "oauth caller: the email must be 1-%d printable characters without spaces", MaxUserIDLen)
	case len(c.Teams) > MaxOAuthTeams:
		return Errorf(ErrBadRequest, "oauth caller: %d teams; at most %d", len(c.Teams), MaxOAuthTeams)
	case c.Org != "" && !ValidToken(c.Org):
		return Errorf(ErrBadRequest, "oauth caller: the organization id is not an id (1-%d of A-Z a-z 0-9 _ -)", MaxTokenLen)
	case c.Expires.IsZero():
		return Errorf(ErrBadRequest, "oauth caller: no expiry")
	}
	for _, t := range c.Teams {
		if !ValidToken(t) {
			return Errorf(ErrBadRequest, "oauth caller: team %q is not an id (1-%d of A-Z a-z 0-9 _ -)", Shorten(t, 64), MaxTokenLen)
		}
	}
	return nil
}

// OAuthKeyID is the KeyID of an OAuth user: stable across the user's tokens
// (a refreshed token keeps its sessions), distinct per issuer, and a token
// of the bus's alphabet whatever characters the subject holds.
func OAuthKeyID(issuer, user string) string {
	sum := sha256.Sum256([]byte(issuer + "\n" + user))
	return "oauth-" + hex.EncodeToString(sum[:12])
}
