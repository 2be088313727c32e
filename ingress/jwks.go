package ingress

// The JWKS of signed calls (docs/SIGNED_CALLS.md): GET /.well-known/jwks.json,
// LiteLLM's path, the public keys an upstream verifies the gateway's tokens
// with (current first, then the one it replaced, while tokens it signed may
// still be valid). Every ingress serves it, from the signing key bucket the
// registry writes (internal/signing), whatever its own config says.
//
// It belongs to no route family, as the health probes: the callers are
// upstream servers, which may reach the gateway from any address and call
// none of its routes, and a key set is public. Off (no key in the bus), it
// is 404.

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/signing"
)

// JWKSPath is where the key set is served.
const JWKSPath = "/.well-known/jwks.json"

// jwksMaxAge is the Cache-Control max-age of the key set (LiteLLM's for a
// generated key): a verifier refetches on an unknown kid anyway.
const jwksMaxAge = "300"

// jwksFresh is how long an ingress reuses the key set it read, so a burst
// of fetches costs the bus two reads.
const jwksFresh = 10 * time.Second

// jwksCache is the key set last read.
type jwksCache struct {
	mu   sync.Mutex
	body []byte
	at   time.Time
}

func (g *Ingress) jwksRoutes(mux *http.ServeMux) {
	c := &jwksCache{}
	mux.HandleFunc("GET "+JWKSPath, func(w http.ResponseWriter, r *http.Request) { g.serveJWKS(w, r, c) })
}

func (g *Ingress) serveJWKS(w http.ResponseWriter, r *http.Request, c *jwksCache) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.body == nil || time.Since(c.at) > jwksFresh {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		body, err := signing.FetchJWKS(ctx, g.nc, g.log)
		cancel()
		if err != nil {
			g.log.Warn("signed calls: reading the signing keys failed", "err", err, "request_id", requestID(r))
			writeRESTError(w, bus.Errorf(bus.ErrServiceUnavailable, "the signing keys cannot be read now"))
			return
		}
		c.body, c.at = body, time.Now()
	}
	if c.body == nil {
		writeRESTError(w, bus.Errorf(bus.ErrNotFound, "signed calls are off: this gateway publishes no signing keys (guardrails: mcp_jwt_signer)"))
		return
	}
	w.Header().Set("Cache-Control", "public, max-age="+jwksMaxAge)
	writeJSON(w, http.StatusOK, c.body)
}
