package signing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mcpbus/mcpbus/bus"
)

// GatewaySubject is the sub (and act.sub) of a request the gateway makes
// for no caller (an upstream session's initialize, its GET stream) and the
// act.sub of a caller without team or organization, as LiteLLM's
// "litellm-proxy".
const GatewaySubject = "mcpbus"

// Settings are a signer's claims that do not change per call.
type Settings struct {
	Issuer, Audience string
	TTL              time.Duration
}

// Call is what one upstream request is made for: the caller (the worker's
// envelope), its request id, the MCP method and, for tools/call, the tool.
type Call struct {
	Caller    bus.Identity
	RequestID string
	Method    string
	Tool      string
}

type callKey struct{}

// WithCall returns ctx carrying c, for the upstream requests made under it.
func WithCall(ctx context.Context, c Call) context.Context {
	return context.WithValue(ctx, callKey{}, &c)
}

// ForGateway returns ctx without the call it carries: for what the gateway
// does for every caller (an upstream session's initialize), made while
// serving one.
func ForGateway(ctx context.Context) context.Context {
	if CallFrom(ctx) == nil {
		return ctx
	}
	return context.WithValue(ctx, callKey{}, (*Call)(nil))
}

// CallFrom is the call ctx carries; nil for a request made for no caller.
func CallFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

// Claims are a signed call's claims: LiteLLM's (iss, aud, sub, act, scope,
// iat, nbf, exp), a jti, and mcpbus's (server, method, tool, request_id,
// team_id, organization_id).
type Claims struct {
	Issuer    string `json:"iss"`
	Audience  string `json:"aud"`
	Subject   string `json:"sub"`
	Actor     Actor  `json:"act"`
	Scope     string `json:"scope"`
	IssuedAt  int64  `json:"iat"`
	NotBefore int64  `json:"nbf"`
	Expiry    int64  `json:"exp"`
	ID        string `json:"jti"`
	Server    string `json:"server"`
	Method    string `json:"method,omitempty"`
	Tool      string `json:"tool,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	Team      string `json:"team_id,omitempty"`
	Org       string `json:"organization_id,omitempty"`
}

// Actor is RFC 8693's act claim: who acts for the subject.
type Actor struct {
	Subject string `json:"sub"`
}

// ErrNoKey is Sign's error while the registry has not made the key (or
// this process cannot open it).
var ErrNoKey = errors.New("signed calls: no signing key yet (the registry makes it; the worker needs the same secret key as the registry)")

// Signer signs upstream requests with a Keyring's current key.
type Signer struct {
	set  Settings
	ring *Keyring
	now  func() time.Time
	last atomic.Pointer[keySigner] // the jose signer of the latest key
}

type keySigner struct {
	key *Key
	js  jose.Signer
}

// NewSigner returns a signer of set's claims with ring's current key.
func NewSigner(set Settings, ring *Keyring) *Signer {
	return &Signer{set: set, ring: ring, now: time.Now}
}

// Settings are the signer's settings.
func (s *Signer) Settings() Settings { return s.set }

// Sign returns a fresh JWT for a request to server made for c (nil: for
// no caller).
func (s *Signer) Sign(server string, c *Call) (string, error) {
	ks, err := s.keySigner()
	if err != nil {
		return "", err
	}
	jws, err := ks.js.Sign(mustJSON(s.Claims(server, c)))
	if err != nil {
		return "", errors.New("signed calls: signing failed")
	}
	return jws.CompactSerialize()
}

// keySigner is the jose signer of the current key, made once per key.
func (s *Signer) keySigner() (*keySigner, error) {
	k := s.ring.Current()
	if k == nil || k.Private == nil {
		return nil, ErrNoKey
	}
	if ks := s.last.Load(); ks != nil && ks.key == k {
		return ks, nil
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k.Private, KeyID: k.Kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, errors.New("signed calls: the signing key is not usable")
	}
	ks := &keySigner{key: k, js: js}
	s.last.Store(ks)
	return ks, nil
}

// Claims are the claims of a request to server made for c (nil: for no
// caller), valid from now for the TTL.
func (s *Signer) Claims(server string, c *Call) Claims {
	now := s.now().Unix()
	cl := Claims{Issuer: s.set.Issuer, Audience: s.set.Audience, IssuedAt: now, NotBefore: now,
		Expiry: now + int64(s.set.TTL/time.Second), ID: newID(), Server: server,
		Subject: GatewaySubject, Actor: Actor{GatewaySubject}, Scope: "mcp:tools/call mcp:tools/list"}
	if c == nil {
		return cl
	}
	cl.Subject = Subject(c.Caller)
	switch {
	case c.Caller.Team != "":
		cl.Actor.Subject = c.Caller.Team
	case c.Caller.Org != "":
		cl.Actor.Subject = c.Caller.Org
	}
	cl.Method, cl.RequestID, cl.Team, cl.Org = c.Method, c.RequestID, c.Caller.Team, c.Caller.Org
	if c.Method == bus.MethodToolsCall && c.Tool != "" {
		cl.Tool = c.Tool
		cl.Scope = "mcp:tools/call mcp:tools/" + c.Tool + ":call"
	}
	return cl
}

// Subject is the sub of a call made for id: its user, else (as LiteLLM)
// "apikey:" and 16 hex digits of the SHA-256 of its key's id (the hashed
// token: never the key, nor the id an admin can manage it by).
func Subject(id bus.Identity) string {
	if id.User != "" {
		return id.User
	}
	if id.KeyID == "" {
		return GatewaySubject
	}
	h := sha256.Sum256([]byte(id.KeyID))
	return "apikey:" + hex.EncodeToString(h[:])[:16]
}

// newID is a jti: 128 random bits.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
