package gateway

import (
	"context"
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/config"
	"github.com/mcpbus/mcpbus/internal/signing"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Signed calls (docs/SIGNED_CALLS.md): the registry makes the gateway's
// signing key (internal/signing.Ensure), the workers sign with it, every
// ingress serves its JWKS (ingress/jwks.go, whatever the config says: an
// upstream must find the keys of any gateway that signs for it).

// ensureSigningKey makes the signing key bucket and key when the config
// has the mcp_jwt_signer guardrail; a key that cannot be kept (no secret
// key) or read (another secret key) stops the start, naming the variable.
func (g *Gateway) ensureSigningKey(ctx context.Context, o Options, js jetstream.JetStream) error {
	sc := o.Config.SignedCalls
	if sc == nil {
		return nil
	}
	kv, err := bus.EnsureSigningKeyBucket(ctx, js, o.state())
	if err != nil {
		return err
	}
	k, err := signing.Ensure(ctx, kv, g.secrets, sc.Key, o.Log)
	if err != nil {
		return err
	}
	o.Log.Info("signed calls on", "settings", sc.String(), "kid", k.Kid)
	return nil
}

// WorkerSigner is the signer of a process's workers when sc (the config's
// mcp_jwt_signer) is set, nil otherwise: it follows the key the registry
// made on nc until ctx ends, opening it with secrets.
func WorkerSigner(ctx context.Context, nc *nats.Conn, sc *config.SignedCalls, secrets *bus.SecretKey, log *slog.Logger) *signing.Signer {
	if sc == nil {
		return nil
	}
	ring := signing.Follow(ctx, nc, secrets, []string{bus.SigningKeyCurrent}, log)
	return signing.NewSigner(signing.Settings{Issuer: sc.Issuer, Audience: sc.Audience, TTL: sc.TTL}, ring)
}
