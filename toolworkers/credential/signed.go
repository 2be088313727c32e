package credential

// Signed calls (LiteLLM's "MCP zero trust", docs/SIGNED_CALLS.md): with the
// mcp_jwt_signer guardrail, every HTTP request to an upstream server carries
// a short-lived RS256 JWT the gateway signs (internal/signing), so the
// upstream can tell a request came through the gateway, and for whom.
//
// The token goes where LiteLLM puts it, Authorization: Bearer, unless the
// server has a credential of its own there (bearer_token, basic, token,
// authorization, a static or per-request Authorization header, oauth2,
// aws_sigv4): that stays, and the token goes in SignedCallHeader instead,
// "Bearer <jwt>". The caller's own key or token never reaches a worker's
// requests (the ingress keeps it), so the token is the only trace of the
// caller upstream.
//
// Each request gets a fresh token (its own jti and exp), made for the call
// its context carries (signing.WithCall; the worker sets it) or, without
// one (an upstream session's initialize, its GET stream), for the gateway
// itself. Without a key to sign with, the request is not sent: an unsigned
// request would only be refused.

import (
	"fmt"
	"net/http"

	"github.com/mcpbus/mcpbus/bus"
	"github.com/mcpbus/mcpbus/internal/signing"
)

// SignedCallHeader carries the token when Authorization holds the server's
// own credential.
const SignedCallHeader = "X-Mcpbus-Token"

// signedTransport adds the token to every request.
type signedTransport struct {
	base   http.RoundTripper
	server string
	signer *signing.Signer
	// ownAuth: an inner transport sets Authorization (oauth2, aws_sigv4).
	ownAuth bool
}

func (t *signedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	tok, err := t.signer.Sign(t.server, signing.CallFrom(r.Context()))
	if err != nil {
		if r.Body != nil {
			_ = r.Body.Close()
		}
		return nil, bus.Errorf(bus.ErrUpstreamUnavailable, "upstream server %q: %s", t.server, err.Error())
	}
	r = r.Clone(r.Context())
	if t.ownAuth || r.Header.Get("Authorization") != "" {
		r.Header.Set(SignedCallHeader, "Bearer "+tok)
	} else {
		r.Header.Del(SignedCallHeader)
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	return t.base.RoundTrip(r)
}

// String keeps the signer out of any %v.
func (t *signedTransport) String() string { return fmt.Sprintf("signed calls to %q", t.server) }
