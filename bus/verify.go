package bus

import (
	"crypto/sha256"
	"encoding/hex"
)

// VerifyRequest asks auth who holds a key. The ingress sends only the key's
// SHA-256, so the caller's plaintext key never travels on the bus; for an
// OAuth access token it sends what the token proved instead (OAuthCaller),
// never the token.
type VerifyRequest struct {
	KeyHash string       `json:"key_hash,omitempty"`
	OAuth   *OAuthCaller `json:"oauth,omitempty"`
}

// HashKey is the one way a gateway key is turned into its stored form.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// LookupRequest asks the registry for one server.
type LookupRequest struct {
	Name string `json:"name"`
}
