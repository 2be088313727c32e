package testidp

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// accessToken is an issued access token (the JWT's jti is its id), kept
// for userinfo, introspection and revocation.
type accessToken struct {
	id       string
	clientID string
	subject  string
	scopes   []string
	audience []string
	expiry   time.Time
}

// refreshToken is a grant a refresh token carries: the scopes and RFC 8707
// resources first granted, which every refresh may narrow but not widen.
type refreshToken struct {
	token     string
	id        string
	clientID  string
	subject   string
	scopes    []string
	resources []string
	authTime  time.Time
	expiry    time.Time
}

// refreshRequest is one refresh: the stored grant and this request's
// scopes and audience.
type refreshRequest struct {
	grant    refreshToken
	scopes   []string
	audience []string
}

func (r *refreshRequest) GetAMR() []string                 { return amrFor(r.grant.subject) }
func (r *refreshRequest) GetAudience() []string            { return r.audience }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.grant.authTime }
func (r *refreshRequest) GetClientID() string              { return r.grant.clientID }
func (r *refreshRequest) GetScopes() []string              { return r.scopes }
func (r *refreshRequest) GetSubject() string               { return r.grant.subject }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.scopes = scopes }

// clientCredentialsRequest is a client acting for itself: the subject is
// the client id.
type clientCredentialsRequest struct {
	clientID string
	scopes   []string
	audience []string
}

func (c *clientCredentialsRequest) GetSubject() string    { return c.clientID }
func (c *clientCredentialsRequest) GetAudience() []string { return c.audience }
func (c *clientCredentialsRequest) GetScopes() []string   { return c.scopes }
func (c *clientCredentialsRequest) GetClientID() string   { return c.clientID }

// audienceFor is the aud of an access token: the resources, or the client.
func audienceFor(resources []string, clientID string) []string {
	if len(resources) == 0 {
		return []string{clientID}
	}
	return slices.Clone(resources)
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, err := s.newAccessToken(req)
	if err != nil {
		return "", time.Time{}, err
	}
	return at.id, at.expiry, nil
}

// newAccessToken records an access token; s.mu is held.
func (s *storage) newAccessToken(req op.TokenRequest) (*accessToken, error) {
	withClient, ok := req.(interface{ GetClientID() string })
	if !ok {
		return nil, fmt.Errorf("testidp: unsupported token request %T", req)
	}
	at := &accessToken{
		id:       randomID(),
		clientID: withClient.GetClientID(),
		subject:  req.GetSubject(),
		scopes:   slices.Clone(req.GetScopes()),
		audience: slices.Clone(req.GetAudience()),
		expiry:   s.now().Add(s.accessTTL),
	}
	if te, ok := req.(op.TokenExchangeRequest); ok && len(at.audience) == 0 {
		at.audience = slices.Clone(te.GetResourses()) // RFC 8693's resource, as RFC 8707's
	}
	s.accessTokens[at.id] = at
	return at, nil
}

// CreateAccessAndRefreshTokens issues a refresh token with the access
// token: for a code exchange a new grant, for a refresh a rotation (the
// old refresh token stops working).
func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var grant refreshToken
	switch r := req.(type) {
	case *authRequest:
		grant = refreshToken{clientID: r.clientID, subject: r.subject, scopes: slices.Clone(r.scopes), resources: slices.Clone(r.resources), authTime: r.authTime}
	case *refreshRequest:
		old, ok := s.refreshTokens[current]
		if !ok {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("the refresh token was already used or revoked")
		}
		delete(s.refreshTokens, current)
		grant = *old
	default:
		return "", "", time.Time{}, fmt.Errorf("testidp: no refresh token for a %T", req)
	}
	grant.token = randomID() + randomID()
	grant.id = randomID()
	grant.expiry = s.now().Add(s.refreshTTL)
	s.refreshTokens[grant.token] = &grant
	at, err := s.newAccessToken(req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	return at.id, grant.token, at.expiry, nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok || !s.now().Before(rt.expiry) {
		return nil, fmt.Errorf("refresh token %w, used, revoked or expired", errNotFound)
	}
	return &refreshRequest{grant: *rt, scopes: slices.Clone(rt.scopes), audience: audienceFor(rt.resources, rt.clientID)}, nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refreshTokens[token]
	if !ok {
		return "", "", op.ErrInvalidRefreshToken
	}
	return rt.subject, rt.id, nil
}

// RevokeToken revokes a refresh token (by its id, which op looked up) or
// an access token (by its jti). A token of another client is refused; an
// unknown one is no error (RFC 7009, section 2.2).
func (s *storage) RevokeToken(_ context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for token, rt := range s.refreshTokens {
		if rt.id == tokenOrID || token == tokenOrID {
			if rt.clientID != clientID {
				return oidc.ErrInvalidClient().WithDescription("the token was issued to another client")
			}
			delete(s.refreshTokens, token)
			return nil
		}
	}
	if at, ok := s.accessTokens[tokenOrID]; ok {
		if at.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("the token was issued to another client")
		}
		delete(s.accessTokens, tokenOrID)
	}
	return nil
}

// liveAccessToken is an access token not expired nor revoked.
func (s *storage) liveAccessToken(id string) (*accessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at, ok := s.accessTokens[id]
	if !ok || !s.now().Before(at.expiry) {
		return nil, fmt.Errorf("access token %w, revoked or expired", errNotFound)
	}
	return at, nil
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	at, err := s.liveAccessToken(tokenID)
	if err != nil {
		return err
	}
	s.fillUserinfo(info, at.subject, at.scopes)
	return nil
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, _, _ string) error {
	at, err := s.liveAccessToken(tokenID)
	if err != nil {
		return err
	}
	info := new(oidc.UserInfo)
	s.fillUserinfo(info, at.subject, at.scopes)
	resp.SetUserInfo(info)
	resp.Active = true
	resp.Scope = at.scopes
	resp.ClientID = at.clientID
	resp.Audience = at.audience
	resp.Expiration = oidc.FromTime(at.expiry)
	resp.JWTID = at.id
	return nil
}

// ClientCredentials authenticates a confidential client for the client
// credentials grant.
func (s *storage) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok || c.secret == "" || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return nil, oidc.ErrInvalidClient().WithDescription("client %q: unknown, or a wrong secret", id)
	}
	if !slices.Contains(c.grantTypes, oidc.GrantTypeClientCredentials) {
		return nil, oidc.ErrUnauthorizedClient().WithDescription("the client may not use client_credentials")
	}
	return c, nil
}

// ClientCredentialsTokenRequest is the grant without a resource;
// server.ClientCredentialsExchange adds the one the client sent.
func (s *storage) ClientCredentialsTokenRequest(_ context.Context, clientID string, scopes []string) (op.TokenRequest, error) {
	return &clientCredentialsRequest{clientID: clientID, scopes: scopes, audience: []string{clientID}}, nil
}

// signingKey is the provider's RSA key; publicKey its JWKS entry.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	return signingKey{id: s.keyID, key: s.key}, nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{signingKey{id: s.keyID, key: s.key}}}, nil
}
