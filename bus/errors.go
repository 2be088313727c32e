package bus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Kind is one entry of the error catalog: a stable code that travels on the bus in
// micro's Nats-Service-Error-Code header, and how the ingress delivers it to the
// client. This table is the one place errors map to statuses.
type Kind struct {
	// Code is stable: tests, dashboards and clients may match on it.
	Code string
	// RPC is the JSON-RPC error code in the response body.
	RPC int
	// HTTP is the status the ingress answers with. 200 means the error is a
	// JSON-RPC error inside a normal response, which MCP clients surface best.
	HTTP int
	// REST is the status on the REST endpoints (admin, registry, usage),
	// where an error needs an error status: HTTP, unless that is 200.
	REST int
}

// The catalog. JSON-RPC codes in -32000..-32099 are mcpbus's own (implementation
// defined server errors); -32000 and -32001 follow the MCP SDKs' use for "bad
// request" and "session not found".
var (
	ErrBadRequest          = Kind{"MCPBUS_BAD_REQUEST", -32000, http.StatusBadRequest, http.StatusBadRequest}
	ErrSessionNotFound     = Kind{"MCPBUS_SESSION_NOT_FOUND", -32001, http.StatusNotFound, http.StatusNotFound}
	ErrParse               = Kind{"MCPBUS_PARSE_ERROR", -32700, http.StatusBadRequest, http.StatusBadRequest}
	ErrInvalidRequest      = Kind{"MCPBUS_INVALID_REQUEST", -32600, http.StatusBadRequest, http.StatusBadRequest}
	ErrMethodNotFound      = Kind{"MCPBUS_METHOD_NOT_FOUND", -32601, http.StatusOK, http.StatusNotFound}
	ErrInvalidParams       = Kind{"MCPBUS_INVALID_PARAMS", -32602, http.StatusOK, http.StatusBadRequest}
	ErrInternal            = Kind{"MCPBUS_INTERNAL", -32603, http.StatusInternalServerError, http.StatusInternalServerError}
	ErrNotAcceptable       = Kind{"MCPBUS_NOT_ACCEPTABLE", -32000, http.StatusNotAcceptable, http.StatusNotAcceptable}
	ErrUnsupportedMedia    = Kind{"MCPBUS_UNSUPPORTED_MEDIA_TYPE", -32000, http.StatusUnsupportedMediaType, http.StatusUnsupportedMediaType}
	ErrTooLarge            = Kind{"MCPBUS_TOO_LARGE", -32000, http.StatusRequestEntityTooLarge, http.StatusRequestEntityTooLarge}
	ErrRequestTimeout      = Kind{"MCPBUS_REQUEST_TIMEOUT", -32000, http.StatusRequestTimeout, http.StatusRequestTimeout}
	ErrMethodNotAllowed    = Kind{"MCPBUS_METHOD_NOT_ALLOWED", -32000, http.StatusMethodNotAllowed, http.StatusMethodNotAllowed}
	ErrUnauthorized        = Kind{"MCPBUS_UNAUTHORIZED", -32010, http.StatusUnauthorized, http.StatusUnauthorized}
	ErrForbidden           = Kind{"MCPBUS_FORBIDDEN", -32011, http.StatusForbidden, http.StatusForbidden}
	ErrUnknownServer       = Kind{"MCPBUS_UNKNOWN_SERVER", -32012, http.StatusNotFound, http.StatusNotFound}
	ErrNoServerSelected    = Kind{"MCPBUS_NO_SERVER_SELECTED", -32013, http.StatusBadRequest, http.StatusBadRequest}
	ErrUpstreamUnavailable = Kind{"MCPBUS_UPSTREAM_UNAVAILABLE", -32020, http.StatusOK, http.StatusBadGateway}
	ErrUpstreamTimeout     = Kind{"MCPBUS_UPSTREAM_TIMEOUT", -32021, http.StatusOK, http.StatusGatewayTimeout}
	ErrUpstreamProtocol    = Kind{"MCPBUS_UPSTREAM_PROTOCOL", -32022, http.StatusOK, http.StatusBadGateway}
	ErrUpstreamAuth        = Kind{"MCPBUS_UPSTREAM_AUTH", -32023, http.StatusOK, http.StatusBadGateway}
	ErrOverloaded          = Kind{"MCPBUS_OVERLOADED", -32024, http.StatusServiceUnavailable, http.StatusServiceUnavailable}
	ErrToolNotAllowed      = Kind{"MCPBUS_TOOL_NOT_ALLOWED", -32602, http.StatusOK, http.StatusForbidden}
	ErrServiceUnavailable  = Kind{"MCPBUS_SERVICE_UNAVAILABLE", -32025, http.StatusServiceUnavailable, http.StatusServiceUnavailable}
	ErrUpstreamBusy        = Kind{"MCPBUS_UPSTREAM_BUSY", -32026, http.StatusOK, http.StatusServiceUnavailable}
	ErrRateLimited         = Kind{"MCPBUS_RATE_LIMITED", -32029, http.StatusTooManyRequests, http.StatusTooManyRequests}
	// ErrWorkerLost: the tool worker running a call died or froze (liveness.go),
	// or no live worker took it.
	ErrWorkerLost = Kind{"MCPBUS_WORKER_LOST", -32027, http.StatusOK, http.StatusBadGateway}
	// ErrNotPermitted is a key or team permission denial on the MCP surface: a
	// JSON-RPC error with the reason (the REST surface answers ErrForbidden).
	ErrNotPermitted = Kind{"MCPBUS_NOT_PERMITTED", -32030, http.StatusOK, http.StatusForbidden}
	// ErrKeyRevoked ends a call whose key was revoked while it ran.
	ErrKeyRevoked = Kind{"MCPBUS_KEY_REVOKED", -32031, http.StatusOK, http.StatusUnauthorized}
	// ErrNotFound and ErrConflict answer the admin and registry APIs.
	ErrNotFound = Kind{"MCPBUS_NOT_FOUND", -32032, http.StatusNotFound, http.StatusNotFound}
	ErrConflict = Kind{"MCPBUS_CONFLICT", -32033, http.StatusConflict, http.StatusConflict}
	// ErrServerDrained answers a call to a server an operator drained
	// (server_ops.go): nothing was sent upstream; retry after it is undrained.
	ErrServerDrained = Kind{"MCPBUS_SERVER_DRAINED", -32028, http.StatusOK, http.StatusServiceUnavailable}
	// The errors MCP 2026-07-28 defines (era_errors.go), answered to
	// stateless-era requests only: a standard header that does not match the
	// body, a capability the client did not declare, a protocol version
	// mcpbus does not speak.
	ErrHeaderMismatch     = Kind{"MCPBUS_HEADER_MISMATCH", -32020, http.StatusBadRequest, http.StatusBadRequest}
	ErrMissingCapability  = Kind{"MCPBUS_MISSING_CLIENT_CAPABILITY", -32021, http.StatusBadRequest, http.StatusBadRequest}
	ErrUnsupportedVersion = Kind{"MCPBUS_UNSUPPORTED_PROTOCOL_VERSION", -32022, http.StatusBadRequest, http.StatusBadRequest}
)

// kinds is the catalog in order. A slice, so a code listed twice is seen
// (TestCatalogCodesAreUnique), not silently overwritten in a map.
var kinds = []Kind{ErrBadRequest, ErrSessionNotFound, ErrParse, ErrInvalidRequest,
	ErrMethodNotFound, ErrInvalidParams, ErrInternal, ErrNotAcceptable, ErrUnsupportedMedia,
	ErrTooLarge, ErrRequestTimeout, ErrMethodNotAllowed, ErrUnauthorized, ErrForbidden, ErrUnknownServer,
	ErrNoServerSelected, ErrUpstreamUnavailable, ErrUpstreamTimeout, ErrUpstreamProtocol,
	ErrUpstreamAuth, ErrOverloaded, ErrToolNotAllowed, ErrServiceUnavailable, ErrUpstreamBusy, ErrRateLimited,
	ErrNotPermitted, ErrKeyRevoked, ErrNotFound, ErrConflict, ErrWorkerLost, ErrServerDrained,
	ErrHeaderMismatch, ErrMissingCapability, ErrUnsupportedVersion,
	ErrModelNotFound, ErrModelNotAllowed, ErrProvider, ErrContextLength, ErrProviderRejected, ErrContentPolicy, // llm.go
	ErrBudgetExceeded,                    // llm_limits.go
	ErrAgentNotFound, ErrAgentNotAllowed, // a2a.go
	ErrGuardBlocked, ErrGuardUnavailable, // guard.go
	ErrRouteNotExposed,        // routes.go
	ErrUserCredentialRequired, // usercreds.go
	ErrToolPending,            // pins.go
	ErrTaskLimit,              // tasks.go
	ErrURLElicitationRequired} // useroauth.go

// catalog finds a kind by its code (ReplyError).
var catalog = func() map[string]Kind {
	m := make(map[string]Kind, len(kinds))
	for _, k := range kinds {
		m[k.Code] = k
	}
	return m
}()

// Catalog returns every error kind in order, for documentation and tests.
func Catalog() []Kind { return slices.Clone(kinds) }

// Error is a gateway error: a kind and a message meant for the caller. Messages
// must never hold a credential; they name servers, tools and fields instead.
type Error struct {
	Kind    Kind
	Message string
	// RetryAfter, if set, tells the caller when to try again (HTTP Retry-After).
	RetryAfter time.Duration
	// Cause is what went wrong underneath, for the log (Detail) and
	// errors.Is; never sent to the caller.
	Cause error
	// Data are members for the JSON-RPC error's data besides mcpbus_code
	// (the supported versions of ErrUnsupportedVersion). They are made where
	// the answer is written and do not travel on the bus.
	Data map[string]any
	// Elicitation, on ErrURLElicitationRequired, is the URL the caller is
	// asked to open (useroauth.go); it travels on the bus in headers.
	Elicitation *URLElicitation
}

// HeaderRetryAfter carries Error.RetryAfter (whole seconds) on the bus.
const HeaderRetryAfter = "Mcpbus-Retry-After"

func (e *Error) Error() string { return e.Message }

// Unwrap is the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Detail is the message and the cause, for a log line: a cause that names a
// URL (net/http's *url.Error) is given without it, since a URL may carry a
// credential in its path or query.
func (e *Error) Detail() string {
	if e.Cause == nil {
		return e.Message
	}
	return e.Message + ": " + SafeCause(e.Cause)
}

// SafeCause describes err for a log line without the URL a *url.Error holds.
func SafeCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + ": " + SafeCause(ue.Err)
	}
	return err.Error()
}

// Wrap makes an *Error of kind k that keeps cause.
func Wrap(k Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...), Cause: cause}
}

// Errorf makes an *Error of kind k.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, wrapping anything else as ErrInternal with a
// generic message; err is kept as the cause, for the log (Detail), not for
// the caller.
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: ErrInternal, Message: "internal error", Cause: err}
}

// ContextError is the error of an upstream call to server whose context
// ended: its deadline passed, or it was cancelled.
func ContextError(ctx context.Context, server string) *Error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return Wrap(ErrUpstreamTimeout, ctx.Err(), "upstream server %q did not answer in time", server)
	}
	return Wrap(ErrUpstreamUnavailable, ctx.Err(), "call to upstream server %q was cancelled", server)
}

// RespondError answers a micro request with e in micro's error headers.
func RespondError(req micro.Request, e *Error) {
	var opts []micro.RespondOpt
	h := micro.Headers{}
	if e.RetryAfter > 0 {
		h[HeaderRetryAfter] = []string{retrySeconds(e.RetryAfter)}
	}
	if e.Elicitation.Valid() {
		h[HeaderElicitationID], h[HeaderElicitationURL] = []string{e.Elicitation.ID}, []string{e.Elicitation.URL}
	}
	if len(h) > 0 {
		opts = append(opts, micro.WithHeaders(h))
	}
	_ = req.Error(e.Kind.Code, headerSafe(e.Message), nil, opts...)
}

func retrySeconds(d time.Duration) string {
	return strconv.Itoa(int((d + time.Second - 1) / time.Second))
}

// ReplyError reads a gateway error from a reply's micro error headers, or nil if
// the reply is a success. An unknown code is kept as ErrInternal with its message.
func ReplyError(msg *nats.Msg) *Error {
	if msg == nil || msg.Header == nil {
		return nil
	}
	code := msg.Header.Get(micro.ErrorCodeHeader)
	if code == "" {
		return nil
	}
	k, ok := catalog[code]
	if !ok {
		k = ErrInternal
	}
	e := &Error{Kind: k, Message: msg.Header.Get(micro.ErrorHeader)}
	if s, err := strconv.Atoi(msg.Header.Get(HeaderRetryAfter)); err == nil && s > 0 {
		e.RetryAfter = time.Duration(s) * time.Second
	}
	if k == ErrURLElicitationRequired {
		el := &URLElicitation{ID: msg.Header.Get(HeaderElicitationID), URL: msg.Header.Get(HeaderElicitationURL)}
		if el.Valid() {
			e.Elicitation = el
		}
	}
	return e
}

// RequestError turns a failed NATS request into a gateway error for service name.
func RequestError(service string, err error) *Error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return Errorf(ErrServiceUnavailable, "%s is not running (no responders on the bus)", service)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return Errorf(ErrServiceUnavailable, "%s did not answer in time", service)
	default:
		return Errorf(ErrServiceUnavailable, "%s request failed: %v", service, err)
	}
}
