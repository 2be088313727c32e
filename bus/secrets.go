package bus

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Upstream credentials at rest. A server record in BucketServers keeps an
// `os.environ/NAME` reference as written (each worker resolves it from its own
// environment, so the secret never reaches the bus), and a literal secret
// sealed: AES-256-GCM under a key the operator supplies in MCPBUS_SALT_KEY
// (or LiteLLM's LITELLM_SALT_KEY), which only the registry (to seal) and the
// workers (to open) hold. A reader of the bucket (a router, an ingress, or
// anyone who got onto the bus) sees "mcpbus-sealed:v1:...". The server name
// and the field are bound to each sealed value (GCM's additional data), so a
// sealed value cannot be moved to another server or field.
//
// Sealing is deterministic (the nonce is an HMAC of the field and the
// value): the same record seals to the same bytes, so re-seeding an unchanged
// config file rewrites nothing and wakes no watcher. It reveals only whether
// two sealed values of the same field of the same server are equal.

// SealedPrefix starts every sealed value.
const SealedPrefix = "mcpbus-sealed:v1:"

// SecretKeyEnv are the environment variables the key is read from, in order.
var SecretKeyEnv = []string{"MCPBUS_SALT_KEY", "LITELLM_SALT_KEY"}

// SecretKey seals and opens the credentials of server records.
type SecretKey struct {
	aead  cipher.AEAD
	nonce []byte // HMAC key for nonces
}

// NewSecretKey derives a key from material (any string of at least 16
// characters: a random hex or base64 string, as LiteLLM's salt key).
func NewSecretKey(material string) (*SecretKey, error) {
	if len(material) < 16 {
		return nil, errors.New("the secret key must be at least 16 characters")
	}
	enc := sha256.Sum256([]byte("mcpbus secret key v1\x00" + material))
	block, err := aes.NewCipher(enc[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	nk := sha256.Sum256([]byte("mcpbus nonce key v1\x00" + material))
	return &SecretKey{aead: aead, nonce: nk[:]}, nil
}

// SecretKeyFromEnv reads the key from the first of SecretKeyEnv that is set;
// nil (and no error) when none is.
func SecretKeyFromEnv(lookup func(string) (string, bool)) (*SecretKey, error) {
	for _, name := range SecretKeyEnv {
		if v, ok := lookup(name); ok && v != "" {
			k, err := NewSecretKey(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			return k, nil
		}
	}
	return nil, nil
}

// IsSealed reports whether v is a sealed value.
func IsSealed(v string) bool { return strings.HasPrefix(v, SealedPrefix) }

func (k *SecretKey) seal(server, field, v string) string {
	aad := []byte(server + "\x00" + field)
	m := hmac.New(sha256.New, k.nonce)
	m.Write(aad)
	m.Write([]byte{0})
	m.Write([]byte(v))
	nonce := m.Sum(nil)[:k.aead.NonceSize()]
	out := k.aead.Seal(slices.Clone(nonce), nonce, []byte(v), aad)
	return SealedPrefix + base64.RawURLEncoding.EncodeToString(out)
}

func (k *SecretKey) open(server, field, v string) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(v, SealedPrefix))
	if err != nil || len(raw) < k.aead.NonceSize() {
		return "", fmt.Errorf("server %q, %s: a sealed value that is not well formed", server, field)
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(server+"\x00"+field))
	if err != nil {
		return "", fmt.Errorf("server %q, %s: the sealed value does not open with this key (set the same %s on every registry and worker)", server, field, SecretKeyEnv[0])
	}
	return string(plain), nil
}

// secretField is one credential of a record: its name in errors and in the
// sealing's additional data, and where it lives.
type secretField struct {
	name string
	get  func(*ServerSpec) string
	set  func(*ServerSpec, string)
}

// secretFields lists the credentials of s, as ServerFields marks them: each
// Secret field, each value of a SecretEach map (static headers, a stdio
// env), and a SecretURL (url, token_url) that carries a user or a query
// (RedactURL would change it). A stdio server's command and args say what
// runs, and stay readable (API answers redact args all the same): a secret
// belongs in env or os.environ/.
func secretFields(s *ServerSpec) []secretField {
	var out []secretField
	for _, sec := range []Secrecy{Secret, SecretURL, SecretEach} { // credentials first, as errors name them
		for _, f := range ServerFields {
			switch {
			case f.Secrecy != sec:
			case sec == Secret:
				out = append(out, strSecret(f))
			case sec == SecretURL:
				if v := *f.Str(s); v != "" && (IsSealed(v) || RedactURL(v) != v) {
					out = append(out, strSecret(f))
				}
			case sec == SecretEach:
				for _, k := range slices.Sorted(maps.Keys(*f.Map(s))) {
					out = append(out, mapField(f.Name+"."+k, k, f.Map))
				}
			}
		}
	}
	return out
}

func strSecret(f ServerField) secretField {
	return secretField{f.Name, func(s *ServerSpec) string { return *f.Str(s) }, func(s *ServerSpec, v string) { *f.Str(s) = v }}
}

func mapField(name, key string, m func(*ServerSpec) *map[string]string) secretField {
	return secretField{name, func(s *ServerSpec) string { return (*m(s))[key] }, func(s *ServerSpec, v string) { (*m(s))[key] = v }}
}

// cloneSecrets copies the maps secretFields writes into.
func cloneSecrets(s ServerSpec) ServerSpec {
	for _, f := range ServerFields {
		if f.Secrecy == SecretEach {
			*f.Map(&s) = maps.Clone(*f.Map(&s))
		}
	}
	return s
}

// literal reports a credential written as its value: neither empty, nor an
// environment reference, nor sealed already.
func literal(v string) bool {
	return v != "" && !strings.HasPrefix(v, "os.environ/") && !IsSealed(v)
}

// LiteralSecrets names the fields of s that hold a credential as its value
// (what Seal seals).
func LiteralSecrets(s ServerSpec) []string {
	var out []string
	for _, f := range secretFields(&s) {
		if literal(f.get(&s)) {
			out = append(out, f.name)
		}
	}
	return out
}

// Seal returns s with every literal credential sealed. Without a key (k nil)
// a record with a literal credential is refused, naming its fields: it would
// be stored in plain text.
func (k *SecretKey) Seal(s ServerSpec) (ServerSpec, error) {
	if k == nil {
		if lit := LiteralSecrets(s); len(lit) > 0 {
			return s, fmt.Errorf("server %q: %s would be stored in plain text: set %s (the same value on every registry and worker process) or write the values as os.environ/NAME", s.Name, strings.Join(lit, ", "), SecretKeyEnv[0])
		}
		return s, nil
	}
	s = cloneSecrets(s)
	for _, f := range secretFields(&s) {
		if v := f.get(&s); literal(v) {
			f.set(&s, k.seal(s.Name, f.name, v))
		}
	}
	return s, nil
}

// Open returns s with every sealed credential opened. Without a key (k nil)
// a record holding a sealed value is an error naming the variable to set.
func (k *SecretKey) Open(s ServerSpec) (ServerSpec, error) {
	s = cloneSecrets(s)
	for _, f := range secretFields(&s) {
		v := f.get(&s)
		if !IsSealed(v) {
			continue
		}
		if k == nil {
			return s, fmt.Errorf("server %q: %s is sealed and this process has no key: set %s", s.Name, f.name, SecretKeyEnv[0])
		}
		plain, err := k.open(s.Name, f.name, v)
		if err != nil {
			return s, err
		}
		f.set(&s, plain)
	}
	return s, nil
}

// SealToken and OpenToken seal a value kept in another bucket (an OAuth2
// access token cached for a server's replicas), bound to its bucket and key.
func (k *SecretKey) SealToken(bucket, key, v string) string {
	if k == nil {
		return v
	}
	return k.seal(bucket, key, v)
}

// OpenToken opens what SealToken made; a value that is not sealed is
// returned as it is (written by a process without a key).
func (k *SecretKey) OpenToken(bucket, key, v string) (string, error) {
	if !IsSealed(v) {
		return v, nil
	}
	if k == nil {
		return "", fmt.Errorf("%s %q is sealed and this process has no key: set %s", bucket, key, SecretKeyEnv[0])
	}
	return k.open(bucket, key, v)
}
