// Package auth is the auth service: it answers bus.SubjectAuthVerify with the
// caller's identity, or an explicit ErrUnauthorized with the reason.
package auth

import (
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"log/slog"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Options configures the auth service.
type Options struct {
	// MasterKey is the admin key. Empty means the gateway runs open: every caller
	// is the anonymous identity (the serve command allows this on loopback only).
	MasterKey string
	Log       *slog.Logger
	Version   string
}

type verifier struct {
	masterHash []byte // sha256 of the master key; nil when open
	log        *slog.Logger
}

// Start registers the auth micro service on nc.
func Start(nc *nats.Conn, o Options) (micro.Service, error) {
	v := &verifier{log: o.Log}
	if o.MasterKey != "" {
		h := bus.HashKey(o.MasterKey)
		v.masterHash = []byte(h)
	}
	if v.log == nil {
		v.log = slog.Default()
	}
	return micro.AddService(nc, micro.Config{
		Name:        bus.ServiceAuth,
		Version:     version(o.Version),
		Description: "verifies gateway keys",
		Endpoint: &micro.EndpointConfig{
			Subject: bus.SubjectAuthVerify,
			// Verification is a constant-time compare in memory: cheap enough to
			// answer on the subscription goroutine.
			Handler: micro.HandlerFunc(v.handle),
		},
	})
}

func (v *verifier) handle(req micro.Request) {
	var in bus.VerifyRequest
	if len(req.Data()) > 0 {
		if err := json.Unmarshal(req.Data(), &in); err != nil {
			bus.RespondError(req, bus.Errorf(bus.ErrBadRequest, "auth: malformed verify request"))
			return
		}
	}
	id, err := v.verify(in.KeyHash)
	if err != nil {
		bus.RespondError(req, err)
		return
	}
	_ = req.RespondJSON(id)
}

func (v *verifier) verify(keyHash string) (bus.Identity, *bus.Error) {
	if v.masterHash == nil {
		return bus.Identity{KeyID: "anonymous", Permissions: bus.Permissions{AllServers: true}}, nil
	}
	if keyHash == "" {
		return bus.Identity{}, bus.Errorf(bus.ErrUnauthorized,
			"unauthorized: no API key; send 'Authorization: Bearer <key>' or 'x-litellm-api-key: Bearer <key>'")
	}
	if _, err := hex.DecodeString(keyHash); err != nil || len(keyHash) != 64 {
		return bus.Identity{}, bus.Errorf(bus.ErrUnauthorized, "unauthorized: invalid API key")
	}
	if subtle.ConstantTimeCompare([]byte(keyHash), v.masterHash) == 1 {
		return bus.Identity{KeyID: "master", Alias: "master", Admin: true, Permissions: bus.Permissions{AllServers: true}}, nil
	}
	return bus.Identity{}, bus.Errorf(bus.ErrUnauthorized, "unauthorized: invalid API key")
}

func version(v string) string {
	if v == "" {
		return "0.1.0"
	}
	return v
}
