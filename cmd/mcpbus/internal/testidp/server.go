package testidp

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// server is op's LegacyServer with the grants overridden where op has no
// hook for what this IdP needs: the RFC 8707 resource parameter (op reads
// it only for token exchange), PKCE S256 required of public clients, and
// access tokens whose aud is the resource while ID tokens keep aud = the
// client id (op gives both tokens the same audience).
type server struct {
	*op.LegacyServer
	store *storage
}

// errInvalidTarget is RFC 8707's error for a bad resource parameter.
func errInvalidTarget(desc string) *oidc.Error {
	return &oidc.Error{ErrorType: "invalid_target", Description: desc}
}

// parseResources checks RFC 8707 resource values: absolute URIs without a
// fragment.
func parseResources(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		u, err := url.Parse(v)
		if err != nil || !u.IsAbs() || u.Fragment != "" || u.Host == "" {
			return nil, errInvalidTarget("resource must be an absolute URI without a fragment")
		}
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out, nil
}

// narrowAudience is the aud for a token request: the resources it names,
// each of which must have been granted, or all granted ones; the client
// id when none were.
func narrowAudience(granted, requested []string, clientID string) ([]string, error) {
	asked, err := parseResources(requested)
	if err != nil {
		return nil, err
	}
	for _, r := range asked {
		if !slices.Contains(granted, r) {
			return nil, errInvalidTarget("resource was not part of the authorization grant")
		}
	}
	if len(asked) > 0 {
		return asked, nil
	}
	return audienceFor(granted, clientID), nil
}

// Authorize stores the request with its resources and sends the browser
// to the login page. op has validated the client and redirect URI; an
// error here is redirected to the client.
func (s *server) Authorize(_ context.Context, r *op.ClientRequest[oidc.AuthRequest]) (*op.Redirect, error) {
	c := r.Client.(*client)
	if !c.allows(oidc.GrantTypeCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client may not use authorization_code")
	}
	if r.Data.RequestParam != "" {
		return nil, oidc.ErrRequestNotSupported()
	}
	if c.public() && r.Data.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge (PKCE) is required of public clients")
	}
	if r.Data.CodeChallenge != "" && r.Data.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	if slices.Contains(r.Data.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired().WithDescription("there are no sessions: sign-in is always required")
	}
	resources, err := parseResources(r.Form["resource"])
	if err != nil {
		return nil, err
	}
	a := s.store.createAuthRequest(r.Data, resources)
	return op.NewRedirect(c.LoginURL(a.id)), nil
}

// CodeExchange redeems a code once: the request is consumed before it is
// checked, so a replayed code finds nothing.
func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	if !c.allows(oidc.GrantTypeCode) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client may not use authorization_code")
	}
	a, err := s.store.consumeCode(r.Data.Code)
	if err != nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("invalid code").WithParent(err)
	}
	if a.clientID != c.id {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued to another client")
	}
	if r.Data.RedirectURI != a.redirectURI {
		return nil, oidc.ErrInvalidGrant().WithDescription("redirect_uri does not match the authorization request")
	}
	if c.public() && a.challenge == nil {
		return nil, oidc.ErrInvalidGrant().WithDescription("the code was issued without PKCE")
	}
	if err := op.AuthorizeCodeChallenge(r.Data.CodeVerifier, a.challenge); err != nil {
		return nil, err
	}
	if a.audience, err = narrowAudience(a.resources, r.Form["resource"], a.clientID); err != nil {
		return nil, err
	}
	return s.tokenResponse(ctx, a, c, r.Data.Code, "")
}

// RefreshToken rotates the refresh token; the resource may narrow the
// audience to one of the granted resources.
func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	if !c.allows(oidc.GrantTypeRefreshToken) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client may not use refresh_token")
	}
	req, err := op.RefreshTokenRequestByRefreshToken(ctx, s.store, r.Data.RefreshToken)
	if err != nil {
		return nil, err
	}
	rr := req.(*refreshRequest)
	if rr.grant.clientID != c.id {
		return nil, oidc.ErrInvalidGrant().WithDescription("the refresh token was issued to another client")
	}
	if err := op.ValidateRefreshTokenScopes(r.Data.Scopes, rr); err != nil {
		return nil, err
	}
	if rr.audience, err = narrowAudience(rr.grant.resources, r.Form["resource"], c.id); err != nil {
		return nil, err
	}
	return s.tokenResponse(ctx, rr, c, "", r.Data.RefreshToken)
}

// ClientCredentialsExchange issues a token to a confidential client for
// itself, for the resource it names.
func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	c := r.Client.(*client)
	if !c.allows(oidc.GrantTypeClientCredentials) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client may not use client_credentials")
	}
	resources, err := parseResources(r.Form["resource"])
	if err != nil {
		return nil, err
	}
	req := &clientCredentialsRequest{clientID: c.id, scopes: r.Data.Scope, audience: audienceFor(resources, c.id)}
	resp, err := op.CreateClientCredentialsTokenResponse(ctx, req, s.Provider(), c)
	if err != nil {
		return nil, err
	}
	return op.NewResponse(resp), nil
}

// tokenResponse builds the token response as op.CreateTokenResponse does,
// but gives the ID token aud = the client id (op would give it the access
// token's audience, which here is the resource). An ID token is issued
// only when openid was asked for.
func (s *server) tokenResponse(ctx context.Context, req op.IDTokenRequest, c *client, code, refreshToken string) (*op.Response, error) {
	accessToken, newRefresh, validity, err := op.CreateAccessToken(ctx, req, c.AccessTokenType(), s.Provider(), c, refreshToken)
	if err != nil {
		return nil, err
	}
	var idToken string
	if slices.Contains(req.GetScopes(), oidc.ScopeOpenID) {
		idToken, err = op.CreateIDToken(ctx, op.IssuerFromContext(ctx), idTokenRequest(req), c.IDTokenLifetime(), accessToken, code, s.store, c)
		if err != nil {
			return nil, err
		}
	}
	return op.NewResponse(&oidc.AccessTokenResponse{
		AccessToken:  accessToken,
		IDToken:      idToken,
		RefreshToken: newRefresh,
		TokenType:    oidc.BearerToken,
		ExpiresIn:    uint64(max(validity.Seconds(), 0)),
		Scope:        req.GetScopes(),
	}), nil
}

// idTokenRequest wraps a request so that the ID token's aud is the client
// id. An authorization request stays an op.AuthRequest (op reads its nonce).
func idTokenRequest(req op.IDTokenRequest) op.IDTokenRequest {
	if a, ok := req.(op.AuthRequest); ok {
		return idTokenAuthRequest{a}
	}
	return idTokenRefresh{req}
}

type idTokenAuthRequest struct{ op.AuthRequest }

func (r idTokenAuthRequest) GetAudience() []string { return []string{r.GetClientID()} }

type idTokenRefresh struct{ op.IDTokenRequest }

func (r idTokenRefresh) GetAudience() []string { return []string{r.GetClientID()} }

// Discovery is op's metadata, trimmed to what this IdP does (code flow
// only, S256 only) and with the registration endpoint.
func (s *server) Discovery(ctx context.Context, r *op.Request[struct{}]) (*op.Response, error) {
	resp, err := s.LegacyServer.Discovery(ctx, r)
	if err != nil {
		return nil, err
	}
	cfg := resp.Data.(*oidc.DiscoveryConfiguration)
	cfg.RegistrationEndpoint = cfg.Issuer + registerPath
	cfg.ResponseTypesSupported = []string{string(oidc.ResponseTypeCode)}
	cfg.GrantTypesSupported = knownGrants
	cfg.CodeChallengeMethodsSupported = []oidc.CodeChallengeMethod{oidc.CodeChallengeMethodS256}
	cfg.DeviceAuthorizationEndpoint = ""
	return resp, nil
}

// writeMetadata answers /.well-known/oauth-authorization-server (RFC 8414)
// with the discovery document.
func (s *server) writeMetadata(ctx context.Context, w http.ResponseWriter) {
	resp, err := s.Discovery(ctx, nil)
	if err != nil {
		http.Error(w, "metadata: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(resp.Data)
}
