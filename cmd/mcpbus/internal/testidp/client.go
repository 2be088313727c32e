package testidp

import (
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is a registered client as op sees it. A public client is a
// native application: op then accepts a loopback redirect URI on any port
// when one registered differs only in its port (RFC 8252, section 7.3).
type client struct {
	id           string
	secret       string
	redirectURIs []string
	grantTypes   []oidc.GrantType
	opaque       bool
}

var knownGrants = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}

func newClient(c Client) (*client, error) {
	if c.ID == "" {
		return nil, fmt.Errorf("id is required")
	}
	cl := &client{id: c.ID, secret: c.Secret, redirectURIs: slices.Clone(c.RedirectURIs), opaque: c.OpaqueTokens}
	for _, g := range c.GrantTypes {
		gt := oidc.GrantType(g)
		if !slices.Contains(knownGrants, gt) {
			return nil, fmt.Errorf("client %q: grant type %q is not supported (one of authorization_code, refresh_token, client_credentials, %s)", c.ID, g, oidc.GrantTypeTokenExchange)
		}
		cl.grantTypes = append(cl.grantTypes, gt)
	}
	if len(cl.grantTypes) == 0 {
		cl.grantTypes = []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
		if cl.secret != "" {
			cl.grantTypes = append(cl.grantTypes, oidc.GrantTypeClientCredentials)
		}
	}
	if cl.public() && (slices.Contains(cl.grantTypes, oidc.GrantTypeClientCredentials) || slices.Contains(cl.grantTypes, oidc.GrantTypeTokenExchange)) {
		return nil, fmt.Errorf("client %q: client_credentials and token exchange need a secret (the client is public)", c.ID)
	}
	if slices.Contains(cl.grantTypes, oidc.GrantTypeCode) && len(cl.redirectURIs) == 0 {
		return nil, fmt.Errorf("client %q: authorization_code needs at least one redirect URI", c.ID)
	}
	for _, u := range cl.redirectURIs {
		parsed, err := url.Parse(u)
		if err != nil || !parsed.IsAbs() || parsed.Fragment != "" {
			return nil, fmt.Errorf("client %q: redirect URI %q is not an absolute URI without a fragment", c.ID, u)
		}
	}
	return cl, nil
}

func (c *client) public() bool { return c.secret == "" }

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }

func (c *client) ApplicationType() op.ApplicationType {
	if c.public() {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType { return c.grantTypes }

// LoginURL is where op sends the browser to sign in.
func (c *client) LoginURL(id string) string { return loginPath + "?id=" + url.QueryEscape(id) }

func (c *client) AccessTokenType() op.AccessTokenType {
	if c.opaque {
		return op.AccessTokenTypeBearer
	}
	return op.AccessTokenTypeJWT
}
func (c *client) IDTokenLifetime() time.Duration { return time.Hour }
func (c *client) DevMode() bool                  { return false }

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed grants any scope: a test IdP has no scope policy.
func (c *client) IsScopeAllowed(string) bool { return true }

// IDTokenUserinfoClaimsAssertion puts the email in the ID token too.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

func (c *client) allows(g oidc.GrantType) bool { return slices.Contains(c.grantTypes, g) }
