// Package testidp is a real OAuth 2.1 / OpenID Connect authorization server
// for tests and local demos, built on zitadel/oidc's certified provider
// (pkg/op) with in-memory users, clients and tokens. It listens on loopback
// only; its issuer is its own http://127.0.0.1:PORT URL.
//
// What it serves:
//   - discovery at /.well-known/openid-configuration and the same metadata
//     at /.well-known/oauth-authorization-server (RFC 8414), the JWKS at
//     /keys;
//   - the authorization code grant (PKCE S256 required of public clients,
//     refused "plain"), refresh tokens (rotated; the offline_access scope
//     asks for one, as in OpenID Connect), client credentials for
//     confidential clients, revocation (RFC 7009), userinfo, introspection;
//   - RS256 JWT access tokens whose aud is the RFC 8707 resource the client
//     sent (aud = the client id when it sent none) and that carry the user's
//     groups; ID tokens carry the groups too, with aud = the client id;
//   - a login page (/login) taking a form POST of username (the user's id
//     or email) and password;
//   - dynamic client registration (RFC 7591) of public clients at /register.
//
// Test helpers complete the code flow headlessly (AuthorizationCodeFlow),
// refresh (Refresh), and sign tokens directly with the provider's key
// (MintAccessToken) for negative tests.
package testidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account that can sign in.
type User struct {
	// ID is the subject (sub).
	ID       string   `json:"id" yaml:"id"`
	Email    string   `json:"email,omitempty" yaml:"email,omitempty"`
	Password string   `json:"password" yaml:"password"`
	Groups   []string `json:"groups,omitempty" yaml:"groups,omitempty"`
}

// Client is a registered OAuth client. Without a Secret it is public (a
// native app: token_endpoint_auth_method none, PKCE S256 required, loopback
// redirect URIs match on any port, RFC 8252); with one it is confidential
// (client_secret_basic or client_secret_post).
type Client struct {
	ID           string   `json:"id" yaml:"id"`
	Secret       string   `json:"secret,omitempty" yaml:"secret,omitempty"`
	RedirectURIs []string `json:"redirect_uris,omitempty" yaml:"redirect_uris,omitempty"`
	// GrantTypes allowed: authorization_code, refresh_token,
	// client_credentials (confidential clients only). Default:
	// authorization_code and refresh_token, plus client_credentials for a
	// confidential client.
	GrantTypes []string `json:"grant_types,omitempty" yaml:"grant_types,omitempty"`
	// OpaqueTokens: the client's access tokens are opaque (checked by
	// introspection), not JWTs.
	OpaqueTokens bool `json:"opaque_tokens,omitempty" yaml:"opaque_tokens,omitempty"`
}

// Options configure an IdP.
type Options struct {
	// Addr to listen on, loopback only (default 127.0.0.1:0).
	Addr    string
	Users   []User
	Clients []Client
	// AccessTokenTTL is the access token lifetime (default 5 minutes).
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the refresh token lifetime (default 24 hours).
	RefreshTokenTTL time.Duration
}

// IdP is a running provider.
type IdP struct {
	issuer string
	store  *storage
	srv    *http.Server
	done   chan struct{}
	once   sync.Once
}

const (
	defaultAccessTTL  = 5 * time.Minute
	defaultRefreshTTL = 24 * time.Hour
)

// Start checks opts, listens and serves until Close or until ctx ends.
func Start(ctx context.Context, opts Options) (*IdP, error) {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if err := checkLoopback(opts.Addr); err != nil {
		return nil, err
	}
	if opts.AccessTokenTTL <= 0 {
		opts.AccessTokenTTL = defaultAccessTTL
	}
	if opts.RefreshTokenTTL <= 0 {
		opts.RefreshTokenTTL = defaultRefreshTTL
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("testidp: signing key: %w", err)
	}
	store, err := newStorage(opts, key, randomID())
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("testidp: listen on %s: %w", opts.Addr, err)
	}
	issuer := "http://" + ln.Addr().String()
	handler, err := newHandler(issuer, store)
	if err != nil {
		ln.Close()
		return nil, err
	}
	idp := &IdP{
		issuer: issuer,
		store:  store,
		srv:    &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second},
		done:   make(chan struct{}),
	}
	go func() {
		defer close(idp.done)
		if err := idp.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			store.logf("testidp: serve: %v", err)
		}
	}()
	stop := context.AfterFunc(ctx, idp.Close)
	go func() { <-idp.done; stop() }()
	return idp, nil
}

// StartT starts an IdP for a test and closes it when the test ends.
func StartT(t testing.TB, opts Options) *IdP {
	t.Helper()
	idp, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("testidp: %v", err)
	}
	t.Cleanup(idp.Close)
	return idp
}

// Issuer is the issuer URL (http://127.0.0.1:PORT).
func (p *IdP) Issuer() string { return p.issuer }

// JWKSURL is where the provider's public keys are.
func (p *IdP) JWKSURL() string { return p.issuer + "/keys" }

// TokenURL is the token endpoint.
func (p *IdP) TokenURL() string { return p.issuer + "/oauth/token" }

// KeyID is the id (kid) of the key tokens are signed with.
func (p *IdP) KeyID() string { return p.store.keyID }

// Close stops the server and waits for it; it is safe to call twice.
func (p *IdP) Close() {
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			p.srv.Close()
		}
		<-p.done
	})
}

// newHandler builds the provider and routes the endpoints op does not
// have (login, registration, RFC 8414 metadata) beside it.
func newHandler(issuer string, store *storage) (http.Handler, error) {
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("testidp: crypto key: %w", err)
	}
	cfg := &op.Config{
		CryptoKey:                cryptoKey,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		GrantTypeRefreshToken:    true,
		SupportedScopes:          supportedScopes,
		DefaultLogoutRedirectURI: "/",
	}
	provider, err := op.NewProvider(cfg, store, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, fmt.Errorf("testidp: provider: %w", err)
	}
	endpoints := *op.DefaultEndpoints
	endpoints.DeviceAuthorization = nil // no device grant
	srv := &server{LegacyServer: op.NewLegacyServer(provider, endpoints), store: store}
	opHandler := op.RegisterLegacyServer(srv, op.AuthorizeCallbackHandler(provider))

	mux := http.NewServeMux()
	mux.Handle("/", opHandler)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		srv.writeMetadata(op.ContextWithIssuer(r.Context(), issuer), w)
	})
	mux.Handle(loginPath, &loginHandler{store: store, callback: srv.AuthCallbackURL(), issuer: issuer})
	mux.HandleFunc(registerPath, store.register)
	return mux, nil
}

// supportedScopes are the scopes discovery advertises; any other scope a
// client asks for is granted as asked (a test IdP has no scope policy).
var supportedScopes = []string{"openid", "profile", "email", "offline_access", "groups"}

func checkLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("testidp: bad address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("testidp: refusing to listen on non-loopback address %q (it is a test identity provider)", addr)
}

func randomID() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic("testidp: crypto/rand: " + err.Error())
	}
	return hex.EncodeToString(b)
}
