package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Introspection asks an issuer about opaque access tokens (RFC 7662): the
// gateway authenticates as a client of the issuer and posts the token; an
// active token's answer holds its claims.
type Introspection struct {
	// URL is the issuer's introspection endpoint.
	URL string
	// ClientID and ClientSecret authenticate the gateway (HTTP Basic,
	// client_secret_basic).
	ClientID, ClientSecret string
	// Issuer is the trusted issuer whose tokens these are: its claim
	// fields and audiences apply, and an answer naming another iss is
	// refused.
	Issuer string
}

// SetIntrospection makes v check opaque tokens with in; in.Issuer must be
// one of v's issuers.
func (v *Validator) SetIntrospection(in Introspection) error {
	if v.issuers[in.Issuer] == nil {
		return fmt.Errorf("introspection: issuer %q is not one of the trusted issuers", in.Issuer)
	}
	if in.URL == "" || in.ClientID == "" {
		return fmt.Errorf("introspection: url and client_id are required")
	}
	v.introspection = &in
	return nil
}

// Introspects reports whether v checks opaque tokens.
func (v *Validator) Introspects() bool { return v.introspection != nil }

// introspectMaxBytes bounds an introspection answer.
const introspectMaxBytes = 64 << 10

// MaxIntrospectedLifetime is how long the answer for a token without exp
// is trusted. Any answer is reused for at most bus.VerifyCacheTTL (the
// ingress's verify cache), so a token the issuer revokes stops working
// within that.
const MaxIntrospectedLifetime = time.Minute

// Introspect checks an opaque token with the issuer's introspection
// endpoint. A token the issuer no longer considers active (revoked,
// expired) is refused; so is one whose aud does not name this gateway.
func (v *Validator) Introspect(ctx context.Context, token string) (Claims, *Error) {
	in := v.introspection
	if in == nil {
		return Claims{}, invalid("the token is not a JWT, and this gateway introspects no opaque tokens")
	}
	if len(token) > MaxTokenLen {
		return Claims{}, &Error{Code: "invalid_request", Description: fmt.Sprintf("the token is longer than %d bytes", MaxTokenLen)}
	}
	is := v.issuers[in.Issuer]
	if is == nil {
		return Claims{}, invalid("the introspection issuer %q is not trusted", shorten(in.Issuer))
	}
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.URL, strings.NewReader(form.Encode()))
	if err != nil {
		return Claims{}, invalid("the introspection endpoint is not a URL")
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(in.ClientID), url.QueryEscape(in.ClientSecret))
	resp, err := v.client.Do(req)
	if err != nil {
		return Claims{}, &Error{Code: "temporarily_unavailable", Description: "the issuer's introspection endpoint cannot be reached"}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Claims{}, &Error{Code: "temporarily_unavailable", Description: fmt.Sprintf("the issuer's introspection endpoint answered HTTP %d", resp.StatusCode)}
	}
	all := map[string]any{}
	dec := json.NewDecoder(io.LimitReader(resp.Body, introspectMaxBytes))
	dec.UseNumber()
	if err := dec.Decode(&all); err != nil {
		return Claims{}, &Error{Code: "temporarily_unavailable", Description: "the issuer's introspection answer is not JSON"}
	}
	if active, _ := all["active"].(bool); !active {
		return Claims{}, invalid("the token is not active (revoked, expired, or not this issuer's)")
	}
	c := Claims{Issuer: in.Issuer, All: all}
	if iss, ok := all["iss"].(string); ok && iss != "" && iss != in.Issuer {
		return Claims{}, invalid("the token's issuer %q is not %q", shorten(iss), in.Issuer)
	}
	all["iss"] = in.Issuer
	c.Subject, _ = all["sub"].(string)
	if c.Subject == "" {
		return Claims{}, invalid("the introspected token has no subject (sub)")
	}
	now := v.now()
	c.Expiry = now.Add(MaxIntrospectedLifetime)
	if n, ok := all["exp"].(json.Number); ok {
		sec, err := n.Int64()
		if err != nil {
			return Claims{}, invalid("the introspected token's exp is not a time")
		}
		c.Expiry = time.Unix(sec, 0)
		all["exp"] = float64(sec)
	}
	if !now.Before(c.Expiry.Add(is.cfg.Leeway)) {
		return Claims{}, invalid("the token expired at %s", c.Expiry.UTC().Format(time.RFC3339))
	}
	// aud is optional in an introspection answer; when given it must name
	// this gateway, as a JWT's must.
	if aud := audienceOf(all["aud"]); len(aud) > 0 {
		if !is.forUs(aud) {
			return Claims{}, invalid("the token is not for this resource (aud must name %s)", is.audienceWords())
		}
		c.Audience = aud
	}
	// Numbers other than exp read as claim values do (caller.go).
	for k, val := range all {
		if n, ok := val.(json.Number); ok {
			f, _ := n.Float64()
			all[k] = f
		}
	}
	return c, nil
}

// audienceOf is an aud claim's values: one string, or a list.
func audienceOf(v any) []string { return stringsOf(v, false) }
