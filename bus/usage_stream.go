package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Usage stream limits. The stream keeps whichever is smaller: the last
// DefaultUsageMaxAge of events or DefaultUsageMaxBytes of them (oldest
// dropped first). A stored event is ~500 bytes (JSON, subject, headers), so
// 1 GiB holds some 2 million calls. DefaultUsageDuplicates is the window in
// which the server drops a second event with the same request id (Nats-Msg-Id).
const (
	DefaultUsageMaxAge     = 30 * 24 * time.Hour
	DefaultUsageMaxBytes   = 1 << 30
	DefaultUsageDuplicates = 2 * time.Minute
	// UsageMaxMsgSize bounds one event; a bigger one is refused by the stream.
	UsageMaxMsgSize = 64 << 10
)

// UsageStreamOptions overrides the stream's limits; zero fields take the defaults.
type UsageStreamOptions struct {
	MaxAge     time.Duration
	MaxBytes   int64
	Duplicates time.Duration
	// State sets the replicas (StatePolicy); an existing stream's larger
	// limits are kept.
	State StatePolicy
}

// UsageStreamConfig is the configuration of StreamUsage with o applied.
func UsageStreamConfig(o UsageStreamOptions) jetstream.StreamConfig {
	cfg := jetstream.StreamConfig{
		Name:        StreamUsage,
		Description: "mcpbus usage events, one per MCP call handled by a tool worker",
		Subjects:    []string{SubjectUsageAll},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardOld,
		MaxAge:      o.MaxAge,
		MaxBytes:    o.MaxBytes,
		Duplicates:  o.Duplicates,
		MaxMsgSize:  UsageMaxMsgSize,
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultUsageMaxAge
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultUsageMaxBytes
	}
	if cfg.Duplicates <= 0 {
		cfg.Duplicates = DefaultUsageDuplicates
	}
	return cfg
}

// usageMinBytes is as far as UsageStream shrinks the default MaxBytes to fit
// a server with little JetStream storage.
const usageMinBytes = 64 << 20

// UsageStream creates StreamUsage, or brings an existing one to this
// configuration without lowering a limit or the replicas an operator raised
// (EnsureStream; it runs at every start of the registry's host).
//
// With the default MaxBytes, on a server whose JetStream store cannot reserve
// 1 GiB, a new stream takes half of the largest of 512, 256 or 128 MiB that
// can be reserved, so other streams and buckets still fit, and an existing
// stream keeps the size it has. The stream's CachedInfo tells what it got.
func UsageStream(ctx context.Context, js jetstream.JetStream, o UsageStreamOptions) (jetstream.Stream, error) {
	cfg := UsageStreamConfig(o)
	s, err := EnsureStream(ctx, js, cfg, o.State)
	if err == nil || o.MaxBytes > 0 || !insufficientResources(err) {
		return wrapUsageErr(s, err)
	}
	if old, serr := js.Stream(ctx, StreamUsage); serr == nil && old.CachedInfo().Config.MaxBytes >= usageMinBytes {
		cfg.MaxBytes = old.CachedInfo().Config.MaxBytes
		return wrapUsageErr(EnsureStream(ctx, js, cfg, o.State))
	}
	for cfg.MaxBytes/2 >= 2*usageMinBytes {
		cfg.MaxBytes /= 2
		var probe jetstream.Stream
		if probe, err = EnsureStream(ctx, js, cfg, o.State); err == nil {
			// It fits: take half, leaving room (the probe made the stream,
			// so no operator's size is lowered here).
			cfg.MaxBytes /= 2
			cfg.Replicas = probe.CachedInfo().Config.Replicas
			return wrapUsageErr(js.CreateOrUpdateStream(ctx, cfg))
		}
		if !insufficientResources(err) {
			break
		}
	}
	return wrapUsageErr(nil, err)
}

func wrapUsageErr(s jetstream.Stream, err error) (jetstream.Stream, error) {
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamUsage, err)
	}
	return s, nil
}

func insufficientResources(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errInsufficientResources
}

// errInsufficientResources is JetStream's "insufficient storage resources
// available" (NATS error code 10047).
const errInsufficientResources = 10047
