package gateway

import (
	"fmt"
	"net/http"

	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/ingress"
	"github.com/mcpbus/mcpbus/internal/oauth"
)

// OAuthOptions turns the config's OAuth settings into the ingress's: nil
// when OAuth access tokens are not accepted. client fetches the issuers'
// key sets and discovery documents (nil: a default client).
func OAuthOptions(c config.OAuth, client *http.Client) (*ingress.OAuthOptions, error) {
	if !c.Enabled {
		return nil, nil
	}
	issuers := make([]oauth.Issuer, len(c.Issuers))
	for i, is := range c.Issuers {
		issuers[i] = oauth.Issuer{Issuer: is.Issuer, Resource: c.Resource, Audiences: is.Audiences, JWKSURL: is.JWKSURL,
			Algorithms: is.Algorithms, Claims: oauth.ClaimFields(is.Claims)}
	}
	v, err := oauth.New(issuers, client)
	if err != nil {
		return nil, fmt.Errorf("general_settings.litellm_jwtauth.%w", err)
	}
	if in := c.Introspection; in != nil {
		if err := v.SetIntrospection(oauth.Introspection{URL: in.URL, ClientID: in.ClientID, ClientSecret: in.ClientSecret, Issuer: in.Issuer}); err != nil {
			return nil, fmt.Errorf("general_settings.mcp_oauth.%w", err)
		}
	}
	o := &ingress.OAuthOptions{Validator: v, Resource: c.Resource, AuthorizationServers: c.AuthorizationServers,
		Scopes: c.Scopes, TeamIDDefault: c.TeamIDDefault, HTTPClient: client}
	if u := c.UISignIn; u != nil {
		o.UISignIn = &ingress.UISignIn{ClientID: u.ClientID, ClientSecret: u.ClientSecret, Issuer: u.Issuer, Scopes: u.Scopes}
	}
	if cr := c.ClientRegistration; cr != nil {
		o.Registration = &ingress.Registration{ClientID: cr.ClientID, RedirectURIs: cr.RedirectURIs, Issuer: cr.Issuer}
	}
	return o, nil
}
