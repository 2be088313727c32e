package config

import (
	"net/url"
	"strings"

	"github.com/mcpbus/mcpbus/bus"
)

// auth_type oauth2 comes in LiteLLM's two flows (oauth2_flow):
// client_credentials, the default (one token of the gateway's, from
// token_url with client_id and client_secret), and authorization_code
// (each user signs in at the authorization server; the gateway keeps each
// user's token and refreshes it: bus/useroauth.go).

// UserOAuth is a server whose users each sign in (oauth2_flow
// authorization_code): the gateway's client at the authorization server.
type UserOAuth struct {
	// AuthorizationURL and TokenURL are the endpoints; either may be empty
	// when Issuer is set (its metadata gives them).
	AuthorizationURL, TokenURL string
	// Issuer, if set, is the issuer an authorization response must name
	// (RFC 9207).
	Issuer string
	// ClientID and ClientSecret (empty: a public client) are the gateway's
	// registration there.
	ClientID, ClientSecret string
	Scopes                 []string
	// Resource is the RFC 8707 resource tokens are asked for: the server's
	// url unless oauth2_resource says otherwise ("" for none).
	Resource string
	// Exchange: oauth2_flow token_exchange (RFC 8693): each caller's own
	// OAuth token is exchanged for one for the upstream, with no sign-in
	// of its own; the client here is confidential.
	Exchange bool
}

// resourceNone is the oauth2_resource that asks for no resource.
const resourceNone = "none"

// checkOAuth2 checks the oauth2 fields against the flow: what each needs.
func checkOAuth2(base string, c *checked) Errors {
	var errs Errors
	add := func(field, msg string) { errs = append(errs, FieldError{base + "." + field, msg}) }
	if c.AuthType != "oauth2" {
		return nil // LiteLLM's configs may carry them on other servers: ignored
	}
	switch c.OAuth2Flow {
	case "", bus.OAuth2FlowClientCredentials:
		if c.TokenURL == "" {
			add("token_url", "required when auth_type is oauth2")
		}
		if c.ClientSecret == "" {
			add("client_secret", "required when auth_type is oauth2")
		}
		if c.AuthorizationURL != "" {
			add("authorization_url", "only used with oauth2_flow authorization_code (each user signs in): set oauth2_flow: authorization_code, or remove it")
		}
	case bus.OAuth2FlowAuthorizationCode:
		if c.OAuth2Issuer == "" {
			if c.AuthorizationURL == "" {
				add("authorization_url", "required with oauth2_flow authorization_code (or oauth2_issuer, whose metadata names it)")
			}
			if c.TokenURL == "" {
				add("token_url", "required with oauth2_flow authorization_code (or oauth2_issuer, whose metadata names it)")
			}
		}
		if c.Transport != "http" && c.Transport != "sse" {
			add("oauth2_flow", "authorization_code signs each user in to an HTTP upstream: needs transport http or sse")
		}
		if r := c.OAuth2Resource; r != "" && r != resourceNone {
			if u, err := url.Parse(r); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				add("oauth2_resource", "must be an http(s) URL (the RFC 8707 resource tokens are asked for), or none")
			}
		}
	case bus.OAuth2FlowTokenExchange:
		if c.OAuth2Issuer == "" && c.TokenURL == "" {
			add("token_url", "required with oauth2_flow token_exchange (or oauth2_issuer, whose metadata names it)")
		}
		if c.ClientID == "" || c.ClientSecret == "" {
			add("client_secret", "client_id and client_secret are required with oauth2_flow token_exchange: the gateway's confidential client, allowed to exchange tokens")
		}
		if c.AuthorizationURL != "" {
			add("authorization_url", "not used with oauth2_flow token_exchange (no one signs in: the caller's own OAuth token is exchanged)")
		}
		if c.Transport != "http" && c.Transport != "sse" {
			add("oauth2_flow", "token_exchange calls an HTTP upstream as each caller: needs transport http or sse")
		}
		if r := c.OAuth2Resource; r != "" && r != resourceNone {
			if u, err := url.Parse(r); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				add("oauth2_resource", "must be an http(s) URL (the RFC 8707 resource tokens are asked for), or none")
			}
		}
	default:
		add("oauth2_flow", "must be client_credentials (one token of the gateway's), authorization_code (each user signs in) or token_exchange (each caller's OAuth token exchanged, RFC 8693)")
	}
	return sortErrors(base, errs)
}

// userOAuth is the UserOAuth of a checked authorization_code server whose
// url is u.
func userOAuth(c checked, r bus.ServerSpec, u *url.URL) *UserOAuth {
	o := &UserOAuth{AuthorizationURL: c.AuthorizationURL, TokenURL: c.TokenURL, Issuer: c.OAuth2Issuer,
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, Scopes: r.Scopes, Resource: c.OAuth2Resource,
		Exchange: c.OAuth2Flow == bus.OAuth2FlowTokenExchange}
	switch o.Resource {
	case "":
		if u != nil {
			o.Resource = u.String()
		}
	case resourceNone:
		o.Resource = ""
	}
	return o
}

// PublicURLEnv is LiteLLM's variable for the proxy's public base URL (its
// SSO callback is built on it); mcpbus builds the per-user sign-in's
// callback on it.
const PublicURLEnv = "PROXY_BASE_URL"

// PublicURL is the gateway's public base URL, which the per-user sign-in's
// links and callback (<public>/oauth/callback) are built on:
// PROXY_BASE_URL, else general_settings.mcp_oauth.resource; "" if neither
// is set. No trailing slash.
func PublicURL(env LookupEnv, o OAuth) string {
	if env != nil {
		if v, ok := env(PublicURLEnv); ok && strings.TrimSpace(v) != "" {
			return strings.TrimRight(strings.TrimSpace(v), "/")
		}
	}
	return strings.TrimRight(o.Resource, "/")
}

// checkPublicURL: a server whose users sign in needs the gateway's public
// URL, and that must be an http(s) URL.
func (f *File) checkPublicURL(p *problems, env LookupEnv) {
	var first string
	for _, s := range f.Servers {
		if s.UserOAuth() && !s.TokenExchange() { // an exchange has no sign-in page
			first = s.Name
			break
		}
	}
	if first == "" {
		return
	}
	pub := PublicURL(env, f.OAuth)
	if pub == "" {
		p.errorf(serverPath(first)+".oauth2_flow", "authorization_code sends each user to sign in and back to <this gateway>/oauth/callback, so the gateway must know its public URL: set "+
			PublicURLEnv+" (LiteLLM's) or general_settings.mcp_oauth.resource")
		return
	}
	if u, err := url.Parse(pub); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" {
		p.errorf("environment variable "+PublicURLEnv, "must be the gateway's public http(s) base URL, without a query")
	}
}
