package ingress

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/oauth"
)

// OAuthOptions make the ingress an OAuth 2.1 protected resource (the MCP
// authorization spec): bearer tokens shaped as JWTs are validated here,
// where they arrive, and auth is asked only about what they proved
// (bus.OAuthCaller), so a token never travels on the bus.
type OAuthOptions struct {
	// Validator checks tokens of the trusted issuers (internal/oauth).
	Validator *oauth.Validator
	// Resource is the gateway's public URL (general_settings.mcp_oauth.resource).
	Resource string
	// AuthorizationServers and Scopes are published in the metadata.
	AuthorizationServers []string
	Scopes               []string
	// TeamIDDefault is the team of users whose token names none here.
	TeamIDDefault string
	// Registration, if set, is the dynamic-registration shim
	// (oauth_register.go).
	Registration *Registration
	// HTTPClient reads the provider's metadata (nil: a default client).
	HTTPClient *http.Client
	// UISignIn, if set, offers "Sign in with <provider>" in the UI
	// (ui_oauth.go).
	UISignIn *UISignIn
}

// WellKnownProtectedResource is where RFC 9728 metadata is published: for
// the resource, and for every path under it after this prefix.
const WellKnownProtectedResource = "/.well-known/oauth-protected-resource"

// maxResourcePath bounds the path a metadata request names.
const maxResourcePath = 512

type oauthGate struct {
	OAuthOptions
	origin   string // scheme://host of Resource
	basePath string // Resource's path, "" or "/prefix"
	asMeta   asMetadata
	// uiProvider is the UI sign-in's client (ui_oauth.go).
	uiProvider uiProvider
}

func newOAuthGate(o *OAuthOptions) *oauthGate {
	if o == nil || o.Validator == nil {
		return nil
	}
	g := &oauthGate{OAuthOptions: *o}
	if g.HTTPClient == nil {
		g.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	g.Resource = strings.TrimRight(g.Resource, "/")
	if u, err := url.Parse(g.Resource); err == nil {
		g.origin = u.Scheme + "://" + u.Host
		g.basePath = strings.TrimRight(u.Path, "/")
	}
	return g
}

// verifyToken answers for a bearer token shaped as a JWT: from the verify
// cache (keyed by the token's hash, never past its expiry), or validated
// here and mapped by auth. A refusal is noted for the WWW-Authenticate
// challenge (challenge).
func (g *Ingress) verifyToken(r *http.Request, token string, opaque bool) (bus.Identity, *bus.Error) {
	id, e := g.verifyTokenOnly(r, token, opaque)
	if e == nil {
		g.exchangeFor(r.Context(), id, token) // oauth_exchange.go
	}
	return id, e
}

func (g *Ingress) verifyTokenOnly(r *http.Request, token string, opaque bool) (bus.Identity, *bus.Error) {
	hash := bus.HashKey(token)
	var gen uint64
	if g.verified != nil {
		var id bus.Identity
		var ok bool
		if id, ok, gen = g.verified.get(hash); ok {
			return id, nil
		}
	}
	ctx := r.Context()
	validate := g.oauth.Validator.Validate
	if opaque {
		validate = g.oauth.Validator.Introspect // RFC 7662
	}
	claims, oe := validate(ctx, token)
	if oe == nil {
		var c bus.OAuthCaller
		if c, oe = g.oauth.Validator.Caller(claims, g.oauth.TeamIDDefault); oe == nil {
			id, e := g.askAuth(ctx, bus.VerifyRequest{OAuth: &c})
			if e == nil && g.verified != nil {
				g.verified.put(hash, id, gen)
			}
			// A user in no team is answered 403 with the reason, without a
			// challenge: signing in again would not help.
			return id, e
		}
	}
	noteChallenge(ctx, oe)
	kind := bus.ErrUnauthorized
	switch oe.Code {
	case "invalid_request":
		kind = bus.ErrBadRequest
	case "temporarily_unavailable":
		return bus.Identity{}, bus.Errorf(bus.ErrServiceUnavailable, "the OAuth access token cannot be checked now: %s", oe.Description)
	}
	return bus.Identity{}, bus.Errorf(kind, "unauthorized: invalid OAuth access token: %s", oe.Description)
}

// introspects reports whether a bearer credential that is not a JWT may be
// an opaque OAuth token to introspect: introspection is on and it is not
// shaped as a gateway's virtual key ("sk-").
func (o *oauthGate) introspects(key string) bool {
	return o != nil && o.Validator.Introspects() && !strings.HasPrefix(key, "sk-")
}

// noteChallenge keeps why a token was refused, for the answer's
// WWW-Authenticate header.
func noteChallenge(ctx context.Context, e *oauth.Error) {
	if info, ok := ctx.Value(reqInfoKey{}).(*reqInfo); ok {
		info.sw.oauthErr = e
	}
}

// challenge is the WWW-Authenticate value of a 401 on path: where the resource metadata is (RFC 9728 §5.1) and,
// when a token was refused, why (RFC 6750 §3).
func (o *oauthGate) challenge(path string, e *oauth.Error) string {
	var b strings.Builder
	b.WriteString(`Bearer resource_metadata="`)
	b.WriteString(o.metadataURL(path))
	b.WriteByte('"')
	if len(o.Scopes) > 0 {
		b.WriteString(`, scope="`)
		b.WriteString(quotable(strings.Join(o.Scopes, " ")))
		b.WriteByte('"')
	}
	if e != nil {
		b.WriteString(`, error="`)
		b.WriteString(quotable(e.Code))
		b.WriteString(`", error_description="`)
		b.WriteString(quotable(e.Description))
		b.WriteByte('"')
	}
	return b.String()
}

// metadataURL is the metadata of the resource path names: the well-known
// prefix inserted between the origin and the path (RFC 9728 §3.1).
func (o *oauthGate) metadataURL(path string) string {
	if !metadataPath(path) {
		path = ""
	}
	return o.origin + WellKnownProtectedResource + o.basePath + path
}

// metadataPath reports whether the request path names a resource of its
// own: the MCP endpoints (other routes take the gateway's document).
func metadataPath(path string) bool {
	if hasPrefixPath(path, WellKnownProtectedResource) {
		return false
	}
	f, ok := routeFamily(http.MethodPost, path)
	return ok && f == bus.RoutesMCP && len(path) <= maxResourcePath && bus.ValidHeaderValue(path) && !strings.ContainsAny(path, `"\`)
}

// quotable makes s fit a quoted-string of an auth-param as RFC 6750 allows
// error_description: visible ASCII without '"' and '\'.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '"':
			return '\''
		case r == '\\' || r < 0x20 || r > 0x7e:
			return '?'
		}
		return r
	}, s)
}

// protectedResource serves RFC 9728 metadata: for the gateway at the bare
// well-known path, and for each MCP path under it (/.well-known/
// oauth-protected-resource/mcp/github describes <resource>/mcp/github), so
// a client that checks that "resource" is the URL it connects to finds it.
func (g *Ingress) protectedResource(w http.ResponseWriter, r *http.Request) {
	o := g.oauth
	if o == nil {
		writeRESTError(w, bus.Errorf(bus.ErrNotFound, "this gateway accepts no OAuth access tokens (general_settings.enable_jwt_auth is off); send a gateway key"))
		return
	}
	rest := strings.TrimPrefix(r.URL.Path, WellKnownProtectedResource)
	rest = strings.TrimPrefix(rest, o.basePath)
	if rest != "" && !metadataPath(rest) {
		writeRESTError(w, bus.Errorf(bus.ErrNotFound, "no protected resource at %s: the metadata describes the gateway (%s) and its MCP paths",
			bus.Shorten(rest, 64), WellKnownProtectedResource))
		return
	}
	doc := struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		BearerMethods        []string `json:"bearer_methods_supported"`
		Scopes               []string `json:"scopes_supported,omitempty"`
		Name                 string   `json:"resource_name"`
	}{o.Resource + rest, o.AuthorizationServers, []string{"header"}, o.Scopes, "mcpbus"}
	body, _ := json.Marshal(doc)
	h := w.Header()
	h.Set("Cache-Control", "public, max-age=300")
	// Browser-based clients (the MCP Inspector) read it across origins.
	h.Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, body)
}
