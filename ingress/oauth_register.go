package ingress

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/oauth"
)

// Registration is the dynamic-registration shim for identity providers
// without dynamic client registration (Entra ID, Google, most Okta
// tenants): MCP clients register with the gateway (RFC 7591) and are all
// given the one public client an admin registered at the provider. The
// gateway then publishes the provider's authorization-server metadata as
// its own, with this registration endpoint added, and names itself as the
// authorization server in the resource metadata.
type Registration struct {
	// ClientID is the provider's public client for MCP clients.
	ClientID string
	// RedirectURIs are accepted besides loopback ones (http://127.0.0.1,
	// http://[::1] and http://localhost on any port, RFC 8252 §7.3), which
	// native clients use. Each must also be registered at the provider.
	RedirectURIs []string
	// Issuer is the provider whose metadata is published.
	Issuer string
}

const (
	// WellKnownAuthorizationServer is RFC 8414's metadata path.
	WellKnownAuthorizationServer = "/.well-known/oauth-authorization-server"
	// RegisterPath is the shim's registration endpoint.
	RegisterPath = "/oauth/register"
	// metadataTTL is how long the provider's metadata is reused.
	metadataTTL = 5 * time.Minute
	// maxRegistration bounds a registration request.
	maxRegistration = 16 << 10
	// maxRedirectURIs bounds the redirect URIs of one registration.
	maxRedirectURIs = 10
)

// asMetadata keeps the provider's metadata for metadataTTL.
type asMetadata struct {
	mu      sync.Mutex
	md      oauth.Metadata
	fetched time.Time
}

func (c *asMetadata) get(ctx context.Context, client *http.Client, issuer string) (oauth.Metadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.md != nil && time.Since(c.fetched) < metadataTTL {
		return c.md, nil
	}
	md, err := oauth.DiscoverMetadata(ctx, client, issuer)
	if err != nil {
		return nil, err
	}
	c.md, c.fetched = md, time.Now()
	return md, nil
}

// authorizationServer serves the provider's metadata as the gateway's:
// the provider's endpoints, this gateway as the issuer clients found it
// under, the registration shim, and PKCE with S256 (MCP requires it).
func (g *Ingress) authorizationServer(w http.ResponseWriter, r *http.Request) {
	o := g.oauth
	if o == nil || o.Registration == nil {
		writeRESTError(w, bus.Errorf(bus.ErrNotFound, "this gateway is not an authorization server: sign in with the servers its resource metadata names (%s)", WellKnownProtectedResource))
		return
	}
	md, err := o.asMeta.get(r.Context(), o.HTTPClient, o.Registration.Issuer)
	if err != nil {
		g.log.Warn("oauth: the identity provider's metadata cannot be read", "issuer", o.Registration.Issuer, "err", err)
		writeRESTError(w, bus.Errorf(bus.ErrUpstreamUnavailable, "the identity provider's metadata cannot be read now: %v", err))
		return
	}
	out := make(map[string]any, len(md)+3)
	for k, v := range md {
		out[k] = v
	}
	out["issuer"] = o.Resource
	out["registration_endpoint"] = o.origin + o.basePath + RegisterPath
	out["code_challenge_methods_supported"] = []string{"S256"}
	// Every client is given the provider's one client: a metadata-document
	// client id would name a client the provider does not know.
	out["client_id_metadata_document_supported"] = false
	body, _ := json.Marshal(out)
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	writeJSON(w, http.StatusOK, body)
}

// registrationRequest is what of RFC 7591's request the shim reads.
type registrationRequest struct {
	RedirectURIs []string `json:"redirect_uris"`
	ClientName   string   `json:"client_name"`
	GrantTypes   []string `json:"grant_types"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
}

// register answers a dynamic registration (RFC 7591) with the provider's
// public client, when every redirect URI is one the shim accepts.
func (g *Ingress) register(w http.ResponseWriter, r *http.Request) {
	o := g.oauth
	if o == nil || o.Registration == nil {
		writeRESTError(w, bus.Errorf(bus.ErrNotFound, "this gateway registers no clients: register with the identity provider its resource metadata names"))
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRegistration+1))
	if err != nil || len(body) > maxRegistration {
		registrationError(w, "invalid_client_metadata", "the registration request is unreadable or larger than 16 KiB")
		return
	}
	var in registrationRequest
	if err := json.Unmarshal(body, &in); err != nil {
		registrationError(w, "invalid_client_metadata", "the registration request is not a JSON object of client metadata")
		return
	}
	if len(in.RedirectURIs) == 0 || len(in.RedirectURIs) > maxRedirectURIs {
		registrationError(w, "invalid_redirect_uri", "redirect_uris: 1 to 10 are required")
		return
	}
	for _, u := range in.RedirectURIs {
		if !o.redirectAllowed(u) {
			registrationError(w, "invalid_redirect_uri", "redirect_uris: "+bus.Shorten(u, 128)+
				" is neither a loopback URI (http://127.0.0.1, http://localhost, http://[::1], any port) nor one of general_settings.mcp_oauth.client_registration.redirect_uris")
			return
		}
	}
	if in.AuthMethod != "" && in.AuthMethod != "none" {
		registrationError(w, "invalid_client_metadata", "token_endpoint_auth_method: only none (a public client with PKCE) can be registered here")
		return
	}
	for _, gt := range in.GrantTypes {
		if gt != "authorization_code" && gt != "refresh_token" {
			registrationError(w, "invalid_client_metadata", "grant_types: only authorization_code and refresh_token")
			return
		}
	}
	out := map[string]any{
		"client_id":                  o.Registration.ClientID,
		"client_id_issued_at":        time.Now().Unix(),
		"redirect_uris":              in.RedirectURIs,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	}
	if in.ClientName != "" && bus.ValidAlias(in.ClientName) {
		out["client_name"] = in.ClientName
	}
	b, _ := json.Marshal(out)
	writeJSON(w, http.StatusCreated, b)
}

// redirectAllowed: a loopback http URI on any port, or one listed.
func (o *oauthGate) redirectAllowed(raw string) bool {
	if slices.Contains(o.Registration.RedirectURIs, raw) {
		return true
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.User != nil || u.Fragment != "" {
		return false
	}
	switch u.Hostname() {
	case "127.0.0.1", "::1", "localhost":
		return true
	}
	return false
}

// registerPreflight lets browser-based clients register across origins.
func registerPreflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Allow-Methods", "POST")
	h.Set("Access-Control-Allow-Headers", "Content-Type")
	w.WriteHeader(http.StatusNoContent)
}

func registrationError(w http.ResponseWriter, code, desc string) {
	b, _ := json.Marshal(map[string]string{"error": code, "error_description": strings.TrimSpace(desc)})
	writeJSON(w, http.StatusBadRequest, b)
}
