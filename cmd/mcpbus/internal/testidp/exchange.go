package testidp

import (
	"context"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// OAuth 2.0 token exchange (RFC 8693), on behalf of: a confidential client
// allowed the token-exchange grant trades a user's access token issued
// here for one for another resource, for the same user. Delegation (an
// actor token) and impersonation are refused; only access tokens are
// issued.

// ValidateTokenExchangeRequest allows an exchange of a user's access token
// for an access token of the same user.
func (s *storage) ValidateTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) error {
	if req.GetRequestedTokenType() == "" {
		req.SetRequestedTokenType(oidc.AccessTokenType)
	}
	switch {
	case req.GetRequestedTokenType() != oidc.AccessTokenType:
		return oidc.ErrInvalidRequest().WithDescription("only access tokens are issued by exchange")
	case req.GetExchangeSubjectTokenType() != oidc.AccessTokenType:
		return oidc.ErrInvalidRequest().WithDescription("subject_token must be an access token")
	case req.GetExchangeActor() != "":
		return oidc.ErrInvalidRequest().WithDescription("delegation (actor_token) is not supported")
	case len(req.GetResourses()) == 0 && len(req.GetAudience()) == 0:
		return oidc.ErrInvalidRequest().WithDescription("resource or audience is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[req.GetExchangeSubject()] == nil {
		return oidc.ErrInvalidGrant().WithDescription("the subject token is not a user's")
	}
	req.SetSubject(req.GetExchangeSubject())
	return nil
}

// CreateTokenExchangeRequest counts the exchange.
func (s *storage) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.exchanges++
	return nil
}

// GetPrivateClaimsFromTokenExchangeRequest gives the new token the user's
// claims, as any access token of theirs has.
func (s *storage) GetPrivateClaimsFromTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) (map[string]any, error) {
	return s.accessTokenClaims(req.GetSubject(), req.GetScopes()), nil
}

// SetUserinfoFromTokenExchangeRequest is for ID tokens, never issued here
// by exchange.
func (s *storage) SetUserinfoFromTokenExchangeRequest(_ context.Context, info *oidc.UserInfo, req op.TokenExchangeRequest) error {
	s.fillUserinfo(info, req.GetSubject(), req.GetScopes())
	return nil
}

// Exchanges is how many token exchanges the provider granted.
func (p *IdP) Exchanges() int {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return p.store.exchanges
}
