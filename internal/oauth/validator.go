// Package oauth validates OAuth 2.1 access tokens for mcpbus as a protected
// resource (the MCP authorization spec): JWTs from configured issuers,
// checked against each issuer's JWKS, its exact issuer, this gateway's
// resource URL as the audience (RFC 8707), expiry and an algorithm
// allow-list. It is the first step of the identity plan
// (docs/plans/identity.md); auth maps the claims it returns to identities.
//
// A token never appears in an error: errors name the check that failed, in
// the words a WWW-Authenticate error_description carries.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// MaxTokenLen bounds a token: anything longer is refused unread.
const MaxTokenLen = 8 << 10

// DefaultAlgorithms are the signature algorithms accepted when an issuer
// names none: asymmetric only. "none" and the HMAC family are never
// accepted (an HMAC "signature" keyed with a public key is the classic
// algorithm confusion).
var DefaultAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Issuer is one trusted token issuer.
type Issuer struct {
	// Issuer is the exact "iss" value.
	Issuer string
	// Resource is this gateway's resource URL (RFC 8707): a token naming it,
	// or a URL under it (an MCP path such as <resource>/mcp/github, which a
	// client that follows RFC 9728 to the letter asks tokens for), in "aud"
	// is for this gateway.
	Resource string
	// Audiences are other "aud" values accepted exactly. Resource or
	// Audiences is required.
	Audiences []string
	// JWKSURL is where the issuer's public keys are; empty: the jwks_uri of
	// the issuer's discovery document (discover.go).
	JWKSURL string
	// Algorithms allowed (default DefaultAlgorithms).
	Algorithms []string
	// Leeway is the clock skew allowed on exp, nbf and iat (default 60 s).
	Leeway time.Duration
	// Claims name the claims an identity is read from (caller.go).
	Claims ClaimFields
}

// Claims are a valid token's claims.
type Claims struct {
	Issuer   string
	Subject  string
	Audience []string
	Expiry   time.Time
	// All holds every claim as sent (groups, email, roles, ...).
	All map[string]any
}

// Error is a refusal: Code is the RFC 6750 error code (invalid_token,
// invalid_request), Description what failed.
type Error struct {
	Code        string
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(format string, args ...any) *Error {
	return &Error{Code: "invalid_token", Description: fmt.Sprintf(format, args...)}
}

// Validator validates tokens of its issuers.
type Validator struct {
	issuers map[string]*issuer
	now     func() time.Time
	client  *http.Client
	// introspection, if set, checks opaque tokens (introspect.go).
	introspection *Introspection
}

type issuer struct {
	cfg  Issuer
	algs []jose.SignatureAlgorithm
	keys *keySet
}

// New checks the issuers and makes a validator. client fetches the key
// sets (nil: a default client).
func New(issuers []Issuer, client *http.Client) (*Validator, error) {
	if client == nil {
		client = &http.Client{Timeout: jwksTimeout}
	}
	v := &Validator{issuers: map[string]*issuer{}, now: time.Now, client: client}
	for i, is := range issuers {
		is.Resource = strings.TrimRight(is.Resource, "/")
		if is.Issuer == "" || (len(is.Audiences) == 0 && is.Resource == "") {
			return nil, fmt.Errorf("issuers[%d]: issuer and a resource or audience are required", i)
		}
		if _, dup := v.issuers[is.Issuer]; dup {
			return nil, fmt.Errorf("issuers[%d]: %q is listed twice", i, is.Issuer)
		}
		names := is.Algorithms
		if len(names) == 0 {
			names = DefaultAlgorithms
		}
		var algs []jose.SignatureAlgorithm
		for _, n := range names {
			if !slices.Contains(DefaultAlgorithms, n) {
				return nil, fmt.Errorf("issuers[%d]: algorithm %q is not accepted (one of %s)", i, n, strings.Join(DefaultAlgorithms, ", "))
			}
			algs = append(algs, jose.SignatureAlgorithm(n))
		}
		if is.Leeway == 0 {
			is.Leeway = time.Minute
		}
		v.issuers[is.Issuer] = &issuer{cfg: is, algs: algs, keys: &keySet{url: is.JWKSURL, issuer: is.Issuer, client: client, now: func() time.Time { return v.now() }}}
	}
	return v, nil
}

// LooksLikeJWT reports whether a bearer credential is shaped as a JWT
// (three base64url parts), not an mcpbus key.
func LooksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && !strings.HasPrefix(s, "sk-")
}

// Validate checks token and returns its claims.
func (v *Validator) Validate(ctx context.Context, token string) (Claims, *Error) {
	if len(token) > MaxTokenLen {
		return Claims{}, &Error{Code: "invalid_request", Description: fmt.Sprintf("the token is longer than %d bytes", MaxTokenLen)}
	}
	if !LooksLikeJWT(token) {
		return Claims{}, invalid("the token is not a JWT")
	}
	// The issuer, read before the signature is checked, only picks the
	// keys and rules to check it with.
	unverified, err := jwt.ParseSigned(token, allAlgorithms)
	if err != nil {
		return Claims{}, invalid("the token is not a signed JWT with an accepted algorithm (%s)", parseReason(err))
	}
	var peek jwt.Claims
	if err := unverified.UnsafeClaimsWithoutVerification(&peek); err != nil {
		return Claims{}, invalid("the token's claims are not readable")
	}
	is := v.issuers[peek.Issuer]
	if is == nil {
		return Claims{}, invalid("the token's issuer %q is not trusted", shorten(peek.Issuer))
	}
	tok, err := jwt.ParseSigned(token, is.algs)
	if err != nil {
		return Claims{}, invalid("the token's algorithm is not accepted for issuer %q (%s)", is.cfg.Issuer, parseReason(err))
	}
	if len(tok.Headers) != 1 {
		return Claims{}, invalid("the token must have one signature")
	}
	key, err := is.keys.key(ctx, tok.Headers[0].KeyID)
	if err != nil {
		return Claims{}, invalid("the token's signing key cannot be found: %v", err)
	}
	var std jwt.Claims
	all := map[string]any{}
	if err := tok.Claims(key.Key, &std, &all); err != nil {
		return Claims{}, invalid("the token's signature does not verify")
	}
	if std.Expiry == nil {
		return Claims{}, invalid("the token has no expiry (exp)")
	}
	err = std.ValidateWithLeeway(jwt.Expected{Issuer: is.cfg.Issuer, Time: v.now()}, is.cfg.Leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return Claims{}, invalid("the token expired at %s", std.Expiry.Time().UTC().Format(time.RFC3339))
	case err == nil && !is.forUs(std.Audience):
		return Claims{}, invalid("the token is not for this resource (aud must name %s)", is.audienceWords())
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Claims{}, invalid("the token is not valid yet")
	case err != nil:
		return Claims{}, invalid("the token's claims do not hold: %v", err)
	}
	if std.Subject == "" {
		return Claims{}, invalid("the token has no subject (sub)")
	}
	return Claims{Issuer: std.Issuer, Subject: std.Subject, Audience: std.Audience, Expiry: std.Expiry.Time(), All: all}, nil
}

// forUs reports whether aud names this gateway: its resource or a URL
// under it, or one of the audiences accepted exactly.
func (is *issuer) forUs(aud jwt.Audience) bool {
	for _, a := range aud {
		if slices.Contains(is.cfg.Audiences, a) {
			return true
		}
		if r := is.cfg.Resource; r != "" && (a == r || strings.HasPrefix(a, r+"/")) {
			return true
		}
	}
	return false
}

func (is *issuer) audienceWords() string {
	var w []string
	if is.cfg.Resource != "" {
		w = append(w, is.cfg.Resource+" (or a URL under it)")
	}
	return strings.Join(append(w, is.cfg.Audiences...), " or ")
}

// allAlgorithms parses any accepted algorithm before the issuer is known.
var allAlgorithms = func() []jose.SignatureAlgorithm {
	out := make([]jose.SignatureAlgorithm, len(DefaultAlgorithms))
	for i, a := range DefaultAlgorithms {
		out[i] = jose.SignatureAlgorithm(a)
	}
	return out
}()

// parseReason says why a token did not parse, without quoting it.
func parseReason(err error) string {
	msg := err.Error()
	if strings.Contains(msg, "unexpected signature algorithm") {
		return "algorithm not accepted"
	}
	return "malformed"
}

func shorten(s string) string {
	if len(s) > 128 {
		return s[:128] + "…"
	}
	return s
}

// String lists the claims' subject and issuer (never the token).
func (c Claims) String() string {
	b, _ := json.Marshal(map[string]any{"iss": c.Issuer, "sub": c.Subject})
	return string(b)
}
