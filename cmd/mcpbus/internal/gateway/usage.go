package gateway

import (
	"context"

	"github.com/mcpbus/mcpbus/config"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// EnsureUsageStream, run by the registry's host at start, creates (or
// updates, never lowering a limit) the usage stream with the default limits. A failure is logged, not returned: usage events are not on the call
// path, so a NATS account that may not create streams still serves calls
// (each worker then counts and warns about events it could not store).
func EnsureUsageStream(ctx context.Context, js jetstream.JetStream, state bus.StatePolicy) {
	log := state.Log
	s, err := bus.UsageStream(ctx, js, bus.UsageStreamOptions{State: state})
	if err != nil {
		log.Error("usage events will not be stored", "err", err)
		return
	}
	if cfg := s.CachedInfo().Config; cfg.MaxBytes < bus.DefaultUsageMaxBytes {
		log.Warn("usage stream limited to what the JetStream store can reserve", "stream", bus.StreamUsage,
			"max_bytes", cfg.MaxBytes, "wanted", int64(bus.DefaultUsageMaxBytes))
	}
}

// EnsureAuditStream, run by the registry's host at start with audit on,
// creates the audit stream (docs/AUDIT.md) or applies the configured
// retention to it. Like the usage stream's, a failure is logged, not
// returned: the workers then count and warn about records not stored.
func EnsureAuditStream(ctx context.Context, js jetstream.JetStream, a config.Audit, state bus.StatePolicy) {
	if !a.Enabled {
		return
	}
	if _, err := bus.AuditStream(ctx, js, bus.AuditStreamOptions{MaxAge: a.MaxAge, MaxBytes: a.MaxBytes, State: state}); err != nil {
		state.Log.Error("audit records will not be stored", "err", err)
	}
}
