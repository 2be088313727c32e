package bus

import (
	"net/http"
	"slices"
	"strings"
)

// Errors for stateless-era (MCP 2026-07-28) clients. That revision reserves
// JSON-RPC codes -32020..-32099 for the spec, and asks new implementations
// not to use -32000..-32019 (spec basic/index, Error Codes). mcpbus's own
// codes live in that range for older clients, who keep them; a stateless-era
// client gets each one plus 1000 (-32020 UPSTREAM_UNAVAILABLE is -31020),
// outside the JSON-RPC reserved range. data.mcpbus_code, the stable name,
// is the same in both eras.

// modernCodeShift moves mcpbus's own codes out of the reserved range.
const modernCodeShift = 1000

// specKinds are the kinds in the implementation-defined range whose code
// the spec defines with that meaning: they keep it.
var specKinds = []Kind{ErrHeaderMismatch, ErrMissingCapability, ErrUnsupportedVersion, ErrURLElicitationRequired}

// ModernRPC is the JSON-RPC code k answers a stateless-era client with.
func (k Kind) ModernRPC() int {
	if ownCode(k.RPC) && !slices.Contains(specKinds, k) {
		return k.RPC + modernCodeShift
	}
	return k.RPC
}

// ownCode reports whether code is in the implementation-defined range
// (-32099..-32000), where mcpbus's own codes are.
func ownCode(code int) bool { return code >= -32099 && code <= -32000 }

// ModernStatus is the HTTP status of a JSON answer to a stateless-era
// request whose JSON-RPC error code is code (spec transports/streamable-http
// and basic/index): 404 for an unknown method, 400 for invalid params and
// the three errors the revision defines, else other (the status the answer
// had anyway).
func ModernStatus(code, other int) int {
	switch code {
	case -32601:
		return http.StatusNotFound
	case -32602, ErrHeaderMismatch.RPC, ErrMissingCapability.RPC, ErrUnsupportedVersion.RPC:
		return http.StatusBadRequest
	}
	return other
}

// Status is the HTTP status of e's JSON answer to a client of the era
// modern says.
func (e *Error) Status(modern bool) int {
	if !modern {
		return e.Kind.HTTP
	}
	return ModernStatus(e.Kind.ModernRPC(), e.Kind.HTTP)
}

// AllProtocolVersions are the revisions mcpbus speaks in either era, newest
// first: what server/discover and UnsupportedProtocolVersion list.
func AllProtocolVersions() []string {
	return append(slices.Clone(ModernProtocolVersions), ProtocolVersions...)
}

// UnsupportedVersion is the error for a stateless-era request asking for a
// revision mcpbus does not speak; its data lists the ones it does, so a
// client can pick one and retry.
func UnsupportedVersion(requested string) *Error {
	e := Errorf(ErrUnsupportedVersion, "unsupported protocol version %q (supported: %s)",
		Shorten(requested, 64), strings.Join(AllProtocolVersions(), ", "))
	e.Data = map[string]any{"supported": AllProtocolVersions(), "requested": Shorten(requested, 64)}
	return e
}

// RemovedInModern reports whether method is one the stateless era removed
// (spec changelog): asked by a stateless-era client it is answered 404,
// -32601, like any method the server does not have.
func RemovedInModern(method string) bool {
	switch method {
	case MethodInitialize, MethodPing, MethodLoggingSetLevel, MethodResourcesSubscribe, MethodResourcesUnsubscribe:
		return true
	}
	return false
}
