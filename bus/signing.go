package bus

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketSigningKeys holds the key the gateway signs upstream requests with
// (signed calls, internal/signing): under SigningKeyCurrent the key in use,
// its private half sealed (secrets.go), and under SigningKeyPrevious the
// public half of the key it replaced, which the JWKS keeps serving while
// tokens signed with it may still be valid. Only the registry writes it;
// workers read the current key, the ingress both public halves.
const BucketSigningKeys = "mcpbus_signing_keys"

// The keys of BucketSigningKeys.
const (
	SigningKeyCurrent  = "current"
	SigningKeyPrevious = "previous"
)

// signingKeyBucket is the signing key bucket: the stream
// EnsureSigningKeyBucket makes.
var signingKeyBucket = kvNoDirect{
	Bucket:      BucketSigningKeys,
	Description: "mcpbus key for signing upstream requests (signed calls)",
	Storage:     jetstream.FileStorage,
	MaxMsgSize:  -1,
	MaxMsgs:     -1,
	Discard:     jetstream.DiscardNew,
}

// EnsureSigningKeyBucket creates (or updates) the signing key bucket, on
// the file store (the key outlives restarts, unlike LiteLLM's generated
// one). As the OAuth2 token bucket, it has no direct gets: readers use
// MSG.GET, whose answer no reply subject can turn into a record
// (msgget.go).
func EnsureSigningKeyBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) (jetstream.KeyValue, error) {
	if err := ensureKVNoDirect(ctx, js, signingKeyBucket, p); err != nil {
		return nil, err
	}
	kv, err := js.KeyValue(ctx, BucketSigningKeys)
	if err != nil {
		return nil, fmt.Errorf("kv bucket %s: %w", BucketSigningKeys, err)
	}
	return kv, nil
}
