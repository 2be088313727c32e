// Package signing is the gateway's side of signed calls (LiteLLM's "MCP
// zero trust", docs/SIGNED_CALLS.md): one RSA key per gateway, kept in the
// bus so every registry, worker and ingress agree on it; the short-lived
// RS256 JWT a worker puts on each upstream request; the JWKS an ingress
// publishes at /.well-known/jwks.json.
//
// The key lives in bus.BucketSigningKeys. The registry makes it once
// (Ensure: MCP_JWT_SIGNING_KEY when the operator gives one, else a
// generated RSA-2048 key, created with KV Create so two registries racing
// agree on one), its private half sealed with the gateway's secret key
// (bus.SecretKey) so only the processes holding that key (registry,
// workers) can sign. Readers follow the bucket (Keyring).
//
// Nothing here logs, returns or prints a private key or a token: errors
// name the record and what is wrong with it.
package signing

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/mcpbus/mcpbus/bus"
)

// Algorithm is the JWS algorithm of every signed call (LiteLLM's).
const Algorithm = "RS256"

// keyBits is the size of a generated key.
const keyBits = 2048

// minKeyBits: a record with a shorter key is refused.
const minKeyBits = 2048

// record is one key as stored in bus.BucketSigningKeys.
type record struct {
	// Name is the key it is stored under: a record that does not name its
	// key was not written there by the registry (bus/msgget.go).
	Name string `json:"mcpbus_signing_key"`
	// Kid is the RFC 7638 thumbprint of Public (SHA-256, base64url).
	Kid    string          `json:"kid"`
	Public json.RawMessage `json:"public_jwk"`
	// Private is the PKCS#8 DER of the private key, base64url, sealed with
	// the gateway's secret key under (bucket, Name); absent in "previous".
	Private string `json:"private,omitempty"`
	// Source says where the key came from: "generated" or the variable.
	Source  string    `json:"source"`
	Created time.Time `json:"created"`
}

// Key is a usable key: its id, its public half and, in a process that can
// sign, its private half.
type Key struct {
	Kid     string
	Public  *rsa.PublicKey
	Private *rsa.PrivateKey // nil: public only
	Source  string
}

// Thumbprint is the RFC 7638 key id of pub.
func Thumbprint(pub *rsa.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}

// PublicJWK is pub as a JWK for a JWKS: kty RSA, use sig, alg RS256, kid.
func PublicJWK(kid string, pub *rsa.PublicKey) (json.RawMessage, error) {
	return (&jose.JSONWebKey{Key: pub, KeyID: kid, Algorithm: Algorithm, Use: "sig"}).MarshalJSON()
}

// newRecord makes the record of k stored under name, its private half
// sealed with secrets.
func newRecord(name string, k *rsa.PrivateKey, source string, secrets *bus.SecretKey) (*record, error) {
	kid, err := Thumbprint(&k.PublicKey)
	if err != nil {
		return nil, err
	}
	pub, err := PublicJWK(kid, &k.PublicKey)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	priv := secrets.SealToken(bus.BucketSigningKeys, name, base64.RawURLEncoding.EncodeToString(der))
	return &record{Name: name, Kid: kid, Public: pub, Private: priv, Source: source, Created: time.Now().UTC()}, nil
}

// generate makes a new signing key.
func generate() (*rsa.PrivateKey, error) {
	return rsa.GenerateKey(rand.Reader, keyBits)
}

// decodeRecord reads the record stored under name. With secrets it opens
// the private half too (which "current" must have); without, it checks
// the public half only.
func decodeRecord(name string, value []byte, secrets *bus.SecretKey) (*Key, error) {
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, fmt.Errorf("signing key %q: unreadable", name)
	}
	if r.Name != name {
		return nil, fmt.Errorf("signing key %q: the record does not name its key: not the registry's", name)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(r.Public); err != nil {
		return nil, fmt.Errorf("signing key %q: its public key is not a JWK", name)
	}
	pub, ok := jwk.Key.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() < minKeyBits {
		return nil, fmt.Errorf("signing key %q: not an RSA public key of %d bits or more", name, minKeyBits)
	}
	if kid, err := Thumbprint(pub); err != nil || kid != r.Kid || jwk.KeyID != r.Kid {
		return nil, fmt.Errorf("signing key %q: its kid is not its key's thumbprint", name)
	}
	k := &Key{Kid: r.Kid, Public: pub, Source: r.Source}
	if secrets == nil || name != bus.SigningKeyCurrent {
		return k, nil
	}
	if !bus.IsSealed(r.Private) {
		return nil, fmt.Errorf("signing key %q: its private key is not sealed", name)
	}
	plain, err := secrets.OpenToken(bus.BucketSigningKeys, name, r.Private)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: %w", name, err)
	}
	der, err := base64.RawURLEncoding.DecodeString(plain)
	if err != nil {
		return nil, fmt.Errorf("signing key %q: its private key is not well formed", name)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	priv, ok := parsed.(*rsa.PrivateKey)
	if err != nil || !ok || !priv.PublicKey.Equal(pub) {
		return nil, fmt.Errorf("signing key %q: its private key does not match its public key", name)
	}
	k.Private = priv
	return k, nil
}

// publicOnly is r without its private half: what "previous" keeps.
func publicOnly(value []byte, name string) ([]byte, error) {
	var r record
	if err := json.Unmarshal(value, &r); err != nil {
		return nil, errors.New("signing key: unreadable")
	}
	r.Name, r.Private = name, ""
	return json.Marshal(r)
}
