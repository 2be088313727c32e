package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// kvNoDirect describes a bucket the registry makes as the stream of a KV
// bucket as nats.go makes one (one value per key, rollups, no deletes of
// history, a two-minute duplicate window), but without direct gets: a
// direct get answers a record raw onto any reply subject, which anything on
// the bus could then make JetStream write as a record of its own
// (msgget.go). nats.go's KV reads such a bucket with MSG.GET instead. The
// fields are what differs between those buckets; each is used as given (-1
// for no limit, 0 for MaxAge is no expiry).
type kvNoDirect struct {
	Bucket      string
	Description string
	Storage     jetstream.StorageType
	MaxMsgSize  int32
	MaxMsgs     int64
	MaxAge      time.Duration
	Discard     jetstream.DiscardPolicy
	// History is how many values of a key are kept (0: one).
	History int64
}

// streamConfig is the bucket's stream, replicas left to EnsureStream.
func (b kvNoDirect) streamConfig() jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              KVStream(b.Bucket),
		Description:       b.Description,
		Subjects:          []string{KVSubject(b.Bucket, ">")},
		MaxMsgsPerSubject: max(b.History, 1),
		MaxBytes:          -1,
		MaxMsgSize:        b.MaxMsgSize,
		MaxMsgs:           b.MaxMsgs,
		MaxAge:            b.MaxAge,
		MaxConsumers:      -1,
		Storage:           b.Storage,
		AllowRollup:       true,
		DenyDelete:        true,
		Duplicates:        2 * time.Minute,
		Discard:           b.Discard,
		AllowDirect:       false,
	}
}

// ensureKVNoDirect creates (or updates) the bucket's stream (EnsureStream),
// an error naming the bucket.
func ensureKVNoDirect(ctx context.Context, js jetstream.JetStream, b kvNoDirect, p StatePolicy) error {
	if _, err := EnsureStream(ctx, js, b.streamConfig(), p); err != nil {
		return fmt.Errorf("kv bucket %s: %w", b.Bucket, err)
	}
	return nil
}
