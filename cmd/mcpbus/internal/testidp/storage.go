package testidp

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"log"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is the in-memory op.Storage: users, clients, pending
// authorization requests, codes and tokens. tokens.go holds the token half.
type storage struct {
	mu            sync.Mutex
	users         map[string]*User // by id
	clients       map[string]*client
	authRequests  map[string]*authRequest // by id
	codes         map[string]string       // code -> auth request id
	accessTokens  map[string]*accessToken // by id (jti)
	refreshTokens map[string]*refreshToken

	key              *rsa.PrivateKey
	keyID            string
	accessTTL        time.Duration
	refreshTTL       time.Duration
	now              func() time.Time
	logf             func(format string, args ...any)
	maxRegistrations int
	exchanges        int // token exchanges granted (exchange.go)
}

// authRequestTTL bounds how long a login may take and a code may wait.
const authRequestTTL = 10 * time.Minute

func newStorage(opts Options, key *rsa.PrivateKey, keyID string) (*storage, error) {
	s := &storage{
		users:            map[string]*User{},
		clients:          map[string]*client{},
		authRequests:     map[string]*authRequest{},
		codes:            map[string]string{},
		accessTokens:     map[string]*accessToken{},
		refreshTokens:    map[string]*refreshToken{},
		key:              key,
		keyID:            keyID,
		accessTTL:        opts.AccessTokenTTL,
		refreshTTL:       opts.RefreshTokenTTL,
		now:              time.Now,
		logf:             log.Printf,
		maxRegistrations: 1000,
	}
	for i, u := range opts.Users {
		if u.ID == "" || u.Password == "" {
			return nil, fmt.Errorf("testidp: users[%d]: id and password are required", i)
		}
		if _, dup := s.users[u.ID]; dup {
			return nil, fmt.Errorf("testidp: users[%d]: id %q is listed twice", i, u.ID)
		}
		u := u
		u.Groups = slices.Clone(u.Groups)
		s.users[u.ID] = &u
	}
	for i, c := range opts.Clients {
		cl, err := newClient(c)
		if err != nil {
			return nil, fmt.Errorf("testidp: clients[%d]: %w", i, err)
		}
		if _, dup := s.clients[cl.id]; dup {
			return nil, fmt.Errorf("testidp: clients[%d]: id %q is listed twice", i, cl.id)
		}
		s.clients[cl.id] = cl
	}
	return s, nil
}

// authRequest is a pending authorization request; once the user signed
// in it has a subject, and once a code is issued it waits for the
// exchange. audience is what the access token's aud will be: the RFC 8707
// resources the client asked for, or its own id.
type authRequest struct {
	id           string
	clientID     string
	redirectURI  string
	state        string
	nonce        string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	resources    []string
	audience     []string
	subject      string
	authTime     time.Time
	created      time.Time
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return amrFor(a.subject) }
func (a *authRequest) GetAudience() []string                 { return a.audience }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.subject != "" }

func amrFor(subject string) []string {
	if subject == "" {
		return nil
	}
	return []string{"pwd"}
}

// errNotFound answers lookups of unknown ids; op turns it into the
// protocol error of the endpoint.
var errNotFound = errors.New("not found")

// createAuthRequest stores an authorization request with the resources
// the server read from it (op.Storage's CreateAuthRequest cannot see them).
func (s *storage) createAuthRequest(req *oidc.AuthRequest, resources []string) *authRequest {
	a := &authRequest{
		id:           randomID(),
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       slices.Clone([]string(req.Scopes)),
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
		resources:    resources,
		audience:     resources,
		created:      s.now(),
	}
	if len(a.audience) == 0 {
		a.audience = []string{req.ClientID}
	}
	if req.CodeChallenge != "" {
		a.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authRequests[a.id] = a
	return a
}

// CreateAuthRequest is op's path for requests that bypass server.Authorize;
// this provider always goes through server.Authorize.
func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	return s.createAuthRequest(req, nil), nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok || s.now().Sub(a.created) > authRequestTTL {
		return nil, fmt.Errorf("authorization request %w (or expired)", errNotFound)
	}
	copied := *a
	return &copied, nil
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, fmt.Errorf("code %w (used, or never issued)", errNotFound)
	}
	a, ok := s.authRequests[id]
	if !ok || s.now().Sub(a.created) > authRequestTTL {
		return nil, fmt.Errorf("code expired")
	}
	copied := *a
	return &copied, nil
}

// consumeCode takes the authorization request a code was issued for and
// forgets both: a code is good once, even when the exchange then fails.
func (s *storage) consumeCode(code string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	if !ok {
		return nil, fmt.Errorf("code %w (used, or never issued)", errNotFound)
	}
	delete(s.codes, code)
	a, ok := s.authRequests[id]
	delete(s.authRequests, id)
	if !ok || !a.Done() || s.now().Sub(a.created) > authRequestTTL {
		return nil, fmt.Errorf("code expired")
	}
	return a, nil
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.authRequests[id]; !ok {
		return fmt.Errorf("authorization request %w", errNotFound)
	}
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest ends a request and its code: a code is good once.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	for code, reqID := range s.codes {
		if reqID == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// signIn checks a user's credentials and completes the authorization
// request for them. username is the user's id or email.
func (s *storage) signIn(requestID, username, password string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[requestID]
	if !ok {
		return fmt.Errorf("the sign-in request is unknown or expired")
	}
	if a.Done() {
		return fmt.Errorf("the sign-in request is already complete")
	}
	u := s.userByName(username)
	if u == nil || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		return fmt.Errorf("wrong username or password")
	}
	a.subject = u.ID
	a.authTime = s.now()
	return nil
}

func (s *storage) userByName(name string) *User {
	if u, ok := s.users[name]; ok {
		return u
	}
	for _, u := range s.users {
		if u.Email != "" && u.Email == name {
			return u
		}
	}
	return nil
}

func (s *storage) user(id string) *User {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[id]
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("client %q is not registered", id)
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok || c.secret == "" || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return oidc.ErrInvalidClient().WithDescription("client %q: unknown, or a wrong secret", id)
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest fills.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest fills ID tokens: the email for the email scope,
// the groups always.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	s.fillUserinfo(info, req.GetSubject(), scopes)
	return nil
}

func (s *storage) fillUserinfo(info *oidc.UserInfo, subject string, scopes []string) {
	info.Subject = subject
	u := s.user(subject)
	if u == nil {
		return
	}
	if u.Email != "" && slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email = u.Email
		info.EmailVerified = true
	}
	info.AppendClaims("groups", groupsOf(u))
}

func groupsOf(u *User) []string {
	if u.Groups == nil {
		return []string{}
	}
	return slices.Clone(u.Groups)
}

// GetPrivateClaimsFromScopes is op's fallback; GetPrivateClaimsFromRequest
// is what it calls.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, scopes []string) (map[string]any, error) {
	return s.accessTokenClaims(userID, scopes), nil
}

// GetPrivateClaimsFromRequest adds to JWT access tokens the scope
// (RFC 9068) and, for a user, the email and groups.
func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	return s.accessTokenClaims(req.GetSubject(), req.GetScopes()), nil
}

func (s *storage) accessTokenClaims(subject string, scopes []string) map[string]any {
	claims := map[string]any{}
	if len(scopes) > 0 {
		claims["scope"] = oidc.SpaceDelimitedArray(scopes).String()
	}
	if u := s.user(subject); u != nil {
		claims["groups"] = groupsOf(u)
		if u.Email != "" {
			claims["email"] = u.Email
		}
	}
	return claims
}

// GetKeyByIDAndClientID is for the JWT profile grant, which no client here
// uses.
func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not supported")
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) Health(context.Context) error { return nil }
