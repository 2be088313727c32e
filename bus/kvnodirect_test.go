package bus

import (
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TestKVNoDirectStreamConfigs pins each bucket's stream to the literal
// config its Ensure function passed to EnsureStream before kvNoDirect: a
// change here changes what the registry asks of a running NATS.
func TestKVNoDirectStreamConfigs(t *testing.T) {
	for _, c := range []struct {
		name string
		got  kvNoDirect
		want jetstream.StreamConfig
	}{
		{"oauth tokens", oauthTokenBucket, jetstream.StreamConfig{
			Name:              KVStream(BucketOAuthTokens),
			Description:       "mcpbus upstream OAuth2 access tokens shared by worker replicas",
			Subjects:          []string{KVSubject(BucketOAuthTokens, ">")},
			MaxMsgsPerSubject: 1,
			MaxBytes:          -1,
			MaxMsgSize:        -1,
			MaxMsgs:           -1,
			MaxConsumers:      -1,
			Storage:           jetstream.MemoryStorage,
			AllowRollup:       true,
			DenyDelete:        true,
			Duplicates:        2 * time.Minute,
			Discard:           jetstream.DiscardNew,
			AllowDirect:       false,
		}},
		{"lists", listsBucket, jetstream.StreamConfig{
			Name:              KVStream(BucketLists),
			Description:       "mcpbus upstream lists shared by worker replicas while their ttlMs holds",
			Subjects:          []string{KVSubject(BucketLists, ">")},
			MaxMsgsPerSubject: 1,
			MaxBytes:          -1,
			MaxMsgSize:        MaxListEntry + 4096,
			MaxMsgs:           maxListsEntries,
			MaxConsumers:      -1,
			MaxAge:            maxListTTL,
			Storage:           jetstream.MemoryStorage,
			AllowRollup:       true,
			DenyDelete:        true,
			Duplicates:        2 * time.Minute,
			Discard:           jetstream.DiscardOld,
			AllowDirect:       false,
		}},
		{"catalogs", catalogsBucket, jetstream.StreamConfig{
			Name:              KVStream(BucketCatalogs),
			Description:       "mcpbus upstream lists kept across restarts (warm catalogs)",
			Subjects:          []string{KVSubject(BucketCatalogs, ">")},
			MaxMsgsPerSubject: 1,
			MaxBytes:          -1,
			MaxMsgSize:        MaxListEntry + 4096,
			MaxMsgs:           maxListsEntries,
			MaxConsumers:      -1,
			MaxAge:            maxCatalogAge,
			Storage:           jetstream.FileStorage,
			AllowRollup:       true,
			DenyDelete:        true,
			Duplicates:        2 * time.Minute,
			Discard:           jetstream.DiscardOld,
			AllowDirect:       false,
		}},
		{"signing keys", signingKeyBucket, jetstream.StreamConfig{
			Name:              KVStream(BucketSigningKeys),
			Description:       "mcpbus key for signing upstream requests (signed calls)",
			Subjects:          []string{KVSubject(BucketSigningKeys, ">")},
			MaxMsgsPerSubject: 1,
			MaxBytes:          -1,
			MaxMsgSize:        -1,
			MaxMsgs:           -1,
			MaxConsumers:      -1,
			Storage:           jetstream.FileStorage,
			AllowRollup:       true,
			DenyDelete:        true,
			Duplicates:        2 * time.Minute,
			Discard:           jetstream.DiscardNew,
			AllowDirect:       false,
		}},
		{"user credentials", userCredentialsBucket, jetstream.StreamConfig{
			Name:              KVStream(BucketUserCredentials),
			Description:       "mcpbus per-user upstream credentials (sealed)",
			Subjects:          []string{KVSubject(BucketUserCredentials, ">")},
			MaxMsgsPerSubject: 1,
			MaxBytes:          -1,
			MaxMsgSize:        4 * MaxUserCredentialLen,
			MaxMsgs:           -1,
			MaxConsumers:      -1,
			Storage:           jetstream.FileStorage,
			AllowRollup:       true,
			DenyDelete:        true,
			Duplicates:        2 * time.Minute,
			Discard:           jetstream.DiscardNew,
			AllowDirect:       false,
		}},
		{"oauth flows", oauthFlowsBucket, jetstream.StreamConfig{
			Name:              KVStream(BucketOAuthFlows),
			Description:       "mcpbus per-user OAuth sign-ins in progress (tickets, pending states)",
			Subjects:          []string{KVSubject(BucketOAuthFlows, ">")},
			MaxMsgsPerSubject: 1,
			MaxBytes:          -1,
			MaxMsgSize:        8 << 10,
			MaxMsgs:           -1,
			MaxAge:            OAuthFlowTTL,
			MaxConsumers:      -1,
			Storage:           jetstream.MemoryStorage,
			AllowRollup:       true,
			DenyDelete:        true,
			Duplicates:        2 * time.Minute,
			Discard:           jetstream.DiscardOld,
			AllowDirect:       false,
		}},
	} {
		if got := c.got.streamConfig(); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: stream config\n got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}
