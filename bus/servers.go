package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// BucketServers is the KV bucket of ServerSpec records, keyed by server name.
const BucketServers = "mcpbus_servers"

// ServersBucket opens (creating if needed) the servers bucket on the file store.
func ServersBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) (jetstream.KeyValue, error) {
	return EnsureKV(ctx, js, jetstream.KeyValueConfig{
		Bucket:      BucketServers,
		Description: "mcpbus upstream MCP servers",
		History:     5,
		Storage:     jetstream.FileStorage,
	}, p)
}

// DecodeServerRecord reads the record stored under key in the servers
// bucket. One that does not name its key is refused: anything on the bus can
// make JetStream write an answer of its own under any key (msgget.go), and
// only the registry writes records, each naming its server.
func DecodeServerRecord(key string, value []byte) (ServerSpec, error) {
	var s ServerSpec
	if err := json.Unmarshal(value, &s); err != nil {
		return ServerSpec{}, fmt.Errorf("unreadable: %w", err)
	}
	if s.Name != key {
		return ServerSpec{}, errors.New("it does not name its key: not the registry's")
	}
	s.timeout = parsedTimeout{s.Timeout, parseCallTimeout(s.Timeout)}
	return s, nil
}

// BucketOAuthTokens caches upstream OAuth2 access tokens, keyed by server name,
// so the replicas of a worker share one token instead of each fetching its own.
const BucketOAuthTokens = "mcpbus_oauth_tokens"

// oauthTokenBucket is the OAuth2 token bucket: the stream
// EnsureOAuthTokenBucket makes.
var oauthTokenBucket = kvNoDirect{
	Bucket:      BucketOAuthTokens,
	Description: "mcpbus upstream OAuth2 access tokens shared by worker replicas",
	Storage:     jetstream.MemoryStorage,
	MaxMsgSize:  -1,
	MaxMsgs:     -1,
	Discard:     jetstream.DiscardNew,
}

// EnsureOAuthTokenBucket creates (or updates) the bucket in which worker
// replicas share OAuth2 access tokens (sealed: secrets.go), in memory. The
// registry makes it: the workers' bus users may not create buckets
// (natsauth.go). It is the stream of a KV bucket as nats.go makes one, but
// without direct gets: workers write it, and a direct get would answer their
// content raw onto any reply subject (msgget.go); nats.go's KV reads it with
// MSG.GET instead.
func EnsureOAuthTokenBucket(ctx context.Context, js jetstream.JetStream, p StatePolicy) error {
	return ensureKVNoDirect(ctx, js, oauthTokenBucket, p)
}
