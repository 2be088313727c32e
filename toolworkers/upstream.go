package toolworkers

import (
	"context"
	"encoding/json"

	"github.com/mcpbus/mcpbus/bus"
)

// upstream is one server's MCP endpoint as a worker uses it, whatever the
// transport: Streamable HTTP (streamableClient), legacy SSE or stdio
// (connClient). Implementations keep one upstream session open and share it
// between concurrent calls.
type upstream interface {
	// Call sends one request and returns the upstream's response message, whose
	// result or error the worker relays verbatim. What the upstream sends on the
	// request's own stream besides the response (progress, log messages,
	// server-to-client requests) goes to r (nil: notifications are dropped and
	// requests refused); session-wide notifications (list_changed,
	// resources/updated) go to the client's sessionEvents.
	Call(ctx context.Context, method string, params json.RawMessage, r *callRelay) (*bus.Message, error)
	// Notify sends one notification in the session (opening it if needed).
	Notify(ctx context.Context, method string, params json.RawMessage) error
	// Info returns the upstream's initialize result, opening the session if needed.
	Info(ctx context.Context) (json.RawMessage, error)
	// Close ends the session (and, for stdio, the process).
	Close()
}

var _ upstream = (*streamableClient)(nil)

// sessionEvents receives what an upstream session sends outside any one call:
// messages on its GET stream, and session-wide notifications whatever stream
// they come on. A worker's link implements it (links.go).
type sessionEvents interface {
	// sessionOpened says a new upstream session was initialized (the first
	// one, or one replacing a session the upstream forgot): what was cached
	// about the old one is stale.
	sessionOpened()
	// sessionLost says the upstream ended the session (it forgot it, or the
	// connection died); the next call opens a new one.
	sessionLost()
	// sessionNotification is a notification that belongs to no call.
	sessionNotification(method string, params json.RawMessage)
	// serverRequest answers a request the upstream sent outside any call
	// (ping excepted: clients answer it themselves). It returns the JSON-RPC
	// response to send upstream, with the upstream's id.
	serverRequest(ctx context.Context, m *bus.Message) []byte
}

// sessionWide reports whether a notification concerns the whole session (or
// server) rather than the call on whose stream it arrived.
func sessionWide(method string) bool {
	switch method {
	case "notifications/tools/list_changed", "notifications/prompts/list_changed",
		"notifications/resources/list_changed", "notifications/resources/updated":
		return true
	}
	return false
}

// refusal is the JSON-RPC error response to a server-to-client request mcpbus
// will not relay, with the upstream's id.
func refusal(id json.RawMessage, code int, message string) []byte {
	e, _ := json.Marshal(struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}{code, message})
	return bus.RawErrorResponse(id, e)
}

// JSON-RPC codes of refusals sent upstream.
const (
	codeMethodNotFound = -32601
	codeInternal       = -32603
)
