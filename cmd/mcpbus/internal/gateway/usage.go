package gateway

import (
	"context"
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// EnsureUsageStream, run by `mcpbus serve` and `mcpbus worker` at start,
// creates (or updates) the usage stream with the default
// limits. A failure is logged, not returned: usage events are not on the call
// path, so a NATS account that may not create streams still serves calls
// (each worker then counts and warns about events it could not store).
func EnsureUsageStream(ctx context.Context, js jetstream.JetStream, log *slog.Logger) {
	s, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{})
	if err != nil {
		log.Error("usage events will not be stored", "err", err)
		return
	}
	if cfg := s.CachedInfo().Config; cfg.MaxBytes < bus.DefaultUsageMaxBytes {
		log.Warn("usage stream limited to what the JetStream store can reserve", "stream", bus.StreamUsage,
			"max_bytes", cfg.MaxBytes, "wanted", int64(bus.DefaultUsageMaxBytes))
	}
}
