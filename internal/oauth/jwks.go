package oauth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// An issuer's signing keys, from its JWKS URL: fetched on first use, and
// again when a token names a key id not in the set (a provider rotated its
// keys), at most once per refetchEvery, so a stream of made-up key ids
// cannot make the gateway hammer the provider.
const (
	jwksMaxBytes = 1 << 20
	jwksTimeout  = 5 * time.Second
	refetchEvery = 30 * time.Second
)

type keySet struct {
	url    string // "" until discovered (discover.go)
	issuer string
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // last attempt
}

// key returns the public key with id kid ("" when the token names none:
// then the set must hold exactly one signing key).
func (s *keySet) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.find(kid); k != nil {
		return k, nil
	}
	if !s.fetched.IsZero() && s.now().Sub(s.fetched) < refetchEvery {
		return nil, fmt.Errorf("no signing key %q in the issuer's key set", kid)
	}
	s.fetched = s.now()
	if s.url == "" {
		u, err := discoverJWKS(ctx, s.client, s.issuer)
		if err != nil {
			return nil, err
		}
		s.url = u
	}
	keys, err := s.fetch(ctx)
	if err != nil {
		return nil, err
	}
	s.keys = keys
	if k := s.find(kid); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("no signing key %q in the issuer's key set", kid)
}

func (s *keySet) find(kid string) *jose.JSONWebKey {
	if kid == "" {
		if len(s.keys) == 1 {
			return &s.keys[0]
		}
		return nil
	}
	for i := range s.keys {
		if s.keys[i].KeyID == kid {
			return &s.keys[i]
		}
	}
	return nil
}

// fetch reads the key set: public signing keys only (a private key or a
// symmetric one in a JWKS is a misconfiguration, never trusted).
func (s *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, jwksTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS URL: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch the issuer's keys: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch the issuer's keys: HTTP %d", resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, jwksMaxBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("read the issuer's keys: %w", err)
	}
	var out []jose.JSONWebKey
	for _, k := range set.Keys {
		if !k.Valid() || !k.IsPublic() || (k.Use != "" && k.Use != "sig") {
			continue
		}
		out = append(out, k)
	}
	return out, nil
}
