package bus

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
}

// The catalog. JSON-RPC codes in -32000..-32099 are mcpbus's own (implementation
// defined server errors); -32000 and -32001 follow the MCP SDKs' use for "bad
// request" and "session not found".
var (
	ErrBadRequest          = Kind{"MCPBUS_BAD_REQUEST", -32000, http.StatusBadRequest}
	ErrSessionNotFound     = Kind{"MCPBUS_SESSION_NOT_FOUND", -32001, http.StatusNotFound}
	ErrParse               = Kind{"MCPBUS_PARSE_ERROR", -32700, http.StatusBadRequest}
	ErrInvalidRequest      = Kind{"MCPBUS_INVALID_REQUEST", -32600, http.StatusBadRequest}
	ErrMethodNotFound      = Kind{"MCPBUS_METHOD_NOT_FOUND", -32601, http.StatusOK}
	ErrInvalidParams       = Kind{"MCPBUS_INVALID_PARAMS", -32602, http.StatusOK}
	ErrInternal            = Kind{"MCPBUS_INTERNAL", -32603, http.StatusInternalServerError}
	ErrNotAcceptable       = Kind{"MCPBUS_NOT_ACCEPTABLE", -32000, http.StatusNotAcceptable}
	ErrUnsupportedMedia    = Kind{"MCPBUS_UNSUPPORTED_MEDIA_TYPE", -32000, http.StatusUnsupportedMediaType}
	ErrTooLarge            = Kind{"MCPBUS_TOO_LARGE", -32000, http.StatusRequestEntityTooLarge}
	ErrRequestTimeout      = Kind{"MCPBUS_REQUEST_TIMEOUT", -32000, http.StatusRequestTimeout}
	ErrMethodNotAllowed    = Kind{"MCPBUS_METHOD_NOT_ALLOWED", -32000, http.StatusMethodNotAllowed}
	ErrUnauthorized        = Kind{"MCPBUS_UNAUTHORIZED", -32010, http.StatusUnauthorized}
	ErrForbidden           = Kind{"MCPBUS_FORBIDDEN", -32011, http.StatusForbidden}
	ErrUnknownServer       = Kind{"MCPBUS_UNKNOWN_SERVER", -32012, http.StatusNotFound}
	ErrNoServerSelected    = Kind{"MCPBUS_NO_SERVER_SELECTED", -32013, http.StatusBadRequest}
	ErrUpstreamUnavailable = Kind{"MCPBUS_UPSTREAM_UNAVAILABLE", -32020, http.StatusOK}
	ErrUpstreamTimeout     = Kind{"MCPBUS_UPSTREAM_TIMEOUT", -32021, http.StatusOK}
	ErrUpstreamProtocol    = Kind{"MCPBUS_UPSTREAM_PROTOCOL", -32022, http.StatusOK}
	ErrUpstreamAuth        = Kind{"MCPBUS_UPSTREAM_AUTH", -32023, http.StatusOK}
	ErrOverloaded          = Kind{"MCPBUS_OVERLOADED", -32024, http.StatusServiceUnavailable}
	ErrToolNotAllowed      = Kind{"MCPBUS_TOOL_NOT_ALLOWED", -32602, http.StatusOK}
	ErrServiceUnavailable  = Kind{"MCPBUS_SERVICE_UNAVAILABLE", -32025, http.StatusServiceUnavailable}
	ErrUpstreamBusy        = Kind{"MCPBUS_UPSTREAM_BUSY", -32026, http.StatusOK}
	ErrRateLimited         = Kind{"MCPBUS_RATE_LIMITED", -32029, http.StatusTooManyRequests}
	// ErrWorkerLost: the tool worker running a call died or froze (liveness.go),
	// or no live worker took it.
	ErrWorkerLost = Kind{"MCPBUS_WORKER_LOST", -32027, http.StatusOK}
	// ErrNotPermitted is a key or team permission denial on the MCP surface: a
	// JSON-RPC error with the reason (the REST surface answers ErrForbidden).
	ErrNotPermitted = Kind{"MCPBUS_NOT_PERMITTED", -32030, http.StatusOK}
	// ErrKeyRevoked ends a call whose key was revoked while it ran.
	ErrKeyRevoked = Kind{"MCPBUS_KEY_REVOKED", -32031, http.StatusOK}
	// ErrNotFound and ErrConflict answer the admin and registry APIs.
	ErrNotFound = Kind{"MCPBUS_NOT_FOUND", -32032, http.StatusNotFound}
	ErrConflict = Kind{"MCPBUS_CONFLICT", -32033, http.StatusConflict}
)

var catalog = map[string]Kind{}

func init() {
	for _, k := range []Kind{ErrBadRequest, ErrSessionNotFound, ErrParse, ErrInvalidRequest,
		ErrMethodNotFound, ErrInvalidParams, ErrInternal, ErrNotAcceptable, ErrUnsupportedMedia,
		ErrTooLarge, ErrRequestTimeout, ErrMethodNotAllowed, ErrUnauthorized, ErrForbidden, ErrUnknownServer,
		ErrNoServerSelected, ErrUpstreamUnavailable, ErrUpstreamTimeout, ErrUpstreamProtocol,
		ErrUpstreamAuth, ErrOverloaded, ErrToolNotAllowed, ErrServiceUnavailable, ErrUpstreamBusy, ErrRateLimited, ErrNotPermitted, ErrKeyRevoked, ErrNotFound, ErrConflict, ErrWorkerLost} {
		catalog[k.Code] = k
	}
}

// Catalog returns every error kind, for documentation and tests.
func Catalog() []Kind {
	out := make([]Kind, 0, len(catalog))
	for _, k := range catalog {
		out = append(out, k)
	}
	return out
}

// Error is a gateway error: a kind and a message meant for the caller. Messages
// must never hold a credential; they name servers, tools and fields instead.
type Error struct {
	Kind    Kind
	Message string
	// RetryAfter, if set, tells the caller when to try again (HTTP Retry-After).
	RetryAfter time.Duration
}

// HeaderRetryAfter carries Error.RetryAfter (whole seconds) on the bus.
const HeaderRetryAfter = "Mcpbus-Retry-After"

func (e *Error) Error() string { return e.Message }

// Errorf makes an *Error of kind k.
func Errorf(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, wrapping anything else as ErrInternal with a
// generic message (the detail goes to the log, not to the caller).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Kind: ErrInternal, Message: "internal error"}
}

// RespondError answers a micro request with e in micro's error headers.
func RespondError(req micro.Request, e *Error) {
	var opts []micro.RespondOpt
	if e.RetryAfter > 0 {
		opts = append(opts, micro.WithHeaders(micro.Headers{HeaderRetryAfter: {retrySeconds(e.RetryAfter)}}))
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
